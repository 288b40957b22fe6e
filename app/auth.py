"""Authentication of the public API and of the internal worker endpoint."""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request

from app.errors import ApiError
from app.oidc import KeysUnavailableError, OidcError, OidcVerifier

logger = logging.getLogger(__name__)

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


async def require_worker_caller(
    request: Request,
    *,
    local_key: str,
    verifier: OidcVerifier | None,
    auth_disabled: bool,
) -> None:
    """Raise an ApiError unless the caller may deliver jobs to the worker endpoint.

    Accepted callers: the in-process local dispatcher (a per-process random
    key that never leaves the process), a push carrying a valid OIDC token
    for the configured service account, or anyone when INTERNAL_AUTH=disabled.
    A token that cannot be checked because Google's keys are unreachable is
    a 503, so the queue retries instead of dropping the task.
    """
    supplied = request.headers.get(LOCAL_DISPATCH_HEADER, "")
    if supplied and hmac.compare_digest(supplied.encode(), local_key.encode()):
        return
    if auth_disabled:
        return
    if verifier is None:
        raise ApiError(
            401,
            "the worker endpoint accepts only task-queue deliveries, and no "
            "TASKS_SERVICE_ACCOUNT is configured to check them "
            "(set INTERNAL_AUTH=disabled only in local development)",
        )
    try:
        await verifier.verify(request.headers.get("Authorization"))
    except KeysUnavailableError as exc:
        logger.error("OIDC keys unavailable", extra={"reason": exc.reason})
        raise ApiError(503, exc.reason, headers={"Retry-After": "10"}) from None
    except OidcError as exc:
        # The reason never contains the token itself.
        logger.warning(
            "worker request rejected", extra={"reason": exc.reason, "status": exc.status}
        )
        raise ApiError(exc.status, exc.reason) from None
