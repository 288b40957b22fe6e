"""JSON log lines in Cloud Logging's shape, with the request's trace."""

from __future__ import annotations

import json
import logging

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.logs import CloudLoggingFormatter, TraceMiddleware, current_trace


def format_record(formatter: CloudLoggingFormatter, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, "job %s", ("x",), None)
    for name, value in extra.items():
        setattr(record, name, value)
    return json.loads(formatter.format(record))


def test_line_has_severity_message_and_fields() -> None:
    line = format_record(CloudLoggingFormatter(), job_id="j-1", attempt=2)

    assert line["severity"] == "WARNING"
    assert line["message"] == "job x"
    assert line["job_id"] == "j-1"
    assert line["attempt"] == 2
    assert "logging.googleapis.com/trace" not in line


def test_line_carries_trace_of_request() -> None:
    token = current_trace.set("105445aa7843bc8bf206b12000100000")
    try:
        line = format_record(CloudLoggingFormatter(project="kaboom"))
    finally:
        current_trace.reset(token)

    assert line["logging.googleapis.com/trace"] == (
        "projects/kaboom/traces/105445aa7843bc8bf206b12000100000"
    )


async def test_middleware_reads_cloud_run_trace_header() -> None:
    async def show_trace(request: Request) -> PlainTextResponse:
        return PlainTextResponse(current_trace.get() or "none")

    app = TraceMiddleware(Starlette(routes=[Route("/", show_trace)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        traced = await client.get(
            "/", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
        )
        untraced = await client.get("/")

    assert traced.text == "105445aa7843bc8bf206b12000100000"
    assert untraced.text == "none"
