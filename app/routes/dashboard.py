"""The built-in dashboard: a static page that reads the job API and its event streams.

The page and its script contain no job data and no secret, so they are
served without the token. The script reads the token from the URL
fragment (`/dashboard#token=...`) or from a form field. Browsers never
send a fragment to the server. The script sends the token in the
X-Ingest-Token header, except on the event streams, where it goes in
`?token=` because EventSource cannot set headers.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

# The script and style are separate files so that the policy can forbid
# inline script. No-referrer keeps the stream URLs, token included, out of
# Referer headers.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def dashboard_page(request: Request) -> Response:
    page = resources.files("app").joinpath("static", "dashboard.html").read_bytes()
    return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


routes = [
    Route("/dashboard", dashboard_page, methods=["GET"]),
    Mount("/dashboard/static", StaticFiles(packages=[("app", "static")]), name="dashboard-static"),
]
