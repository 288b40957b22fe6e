"""Authentication of the public API and of the internal worker endpoint."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from app.errors import ApiError

TOKEN_HEADER = "X-Ingest-Token"
# Query parameter that may carry the token on the event-stream endpoints only.
TOKEN_QUERY_PARAMETER = "token"
# Header by which the in-process local dispatcher proves a delivery is its own.
LOCAL_DISPATCH_HEADER = "X-Local-Dispatch-Key"


def require_ingest_token(request: Request, expected: str, *, allow_query: bool = False) -> None:
    """Raise a 401 ApiError unless X-Ingest-Token equals the configured secret.

    With `allow_query`, the `token` query parameter is accepted in place of
    the header, for browsers' EventSource, which cannot send headers. The
    URL, token included, then reaches access logs: see docs/history-and-streams.md.
    """
    supplied = request.headers.get(TOKEN_HEADER, "")
    if not supplied and allow_query:
        supplied = request.query_params.get(TOKEN_QUERY_PARAMETER, "")
    # compare_digest takes the same time whatever prefix matches.
    if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
        accepted = f"{TOKEN_HEADER} header"
        if allow_query:
            accepted += f" or {TOKEN_QUERY_PARAMETER} query parameter"
        raise ApiError(401, f"missing or invalid {accepted}")


def require_worker_caller(request: Request, *, local_key: str, auth_disabled: bool) -> None:
    """Raise a 401 ApiError unless the caller may deliver jobs to the worker endpoint.

    Accepted callers: the in-process local dispatcher (a per-process random
    key that never leaves the process), or anyone when INTERNAL_AUTH=disabled.
    """
    supplied = request.headers.get(LOCAL_DISPATCH_HEADER, "")
    if supplied and hmac.compare_digest(supplied.encode(), local_key.encode()):
        return
    if auth_disabled:
        return
    raise ApiError(
        401,
        "the worker endpoint requires an authenticated task-queue delivery "
        "(set INTERNAL_AUTH=disabled only in local development)",
    )
