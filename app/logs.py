"""JSON log lines in the shape Cloud Logging reads from a Cloud Run container.

Cloud Logging maps `severity` and `message`, and groups lines by trace when
`logging.googleapis.com/trace` is `projects/<project>/traces/<trace id>`.
Fields passed with `extra=` (job_id, attempt, ...) appear as top-level keys,
so the Logs Explorer can filter with `jsonPayload.job_id="..."`.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

# Trace id of the request being served, from the X-Cloud-Trace-Context header.
current_trace: ContextVar[str | None] = ContextVar("current_trace", default=None)

_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class CloudLoggingFormatter(logging.Formatter):
    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        trace = current_trace.get()
        if trace and self.project:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project}/traces/{trace}"
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, project: str | None = None) -> None:
    """Send every log record to stdout as one JSON line, uvicorn's own included."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(project))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs plain-text handlers before it builds the app.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True


class TraceMiddleware:
    """Make the request's trace id available to log lines written while serving it.

    Cloud Run passes it in `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("x-cloud-trace-context", "")
        trace_id = header.split("/", 1)[0].strip()
        token = current_trace.set(trace_id or None)
        try:
            await self.app(scope, receive, send)
        finally:
            current_trace.reset(token)
