"""JSON error responses.

Every error the API returns is a JSON object with `error` (a sentence saying
what failed and what was expected) and, for input errors, `field`.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobstore.errors import JobStoreUnavailable

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying while Redis is unreachable.
STORE_RETRY_AFTER_S = 5


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status_code: int,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body: dict[str, object] = {"error": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Return the request body; raise a 413 ApiError once it exceeds `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {declared} bytes: expected at most {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, f"request body is over {max_bytes} bytes")
    return bytes(body)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message, field=exc.field, headers=exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Turn Starlette's own errors (unknown path, wrong method) into JSON errors."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def handle_store_unavailable(request: Request, exc: Exception) -> Response:
    logger.error("job store unavailable", extra={"path": request.url.path, "error": str(exc)})
    return error_response(
        503,
        "the job store (Redis) is unavailable; retry later",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return error_response(500, "internal error; the service log has the details")


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    JobStoreUnavailable: handle_store_unavailable,
    Exception: handle_unexpected,
}
