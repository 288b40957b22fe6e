"""The worker endpoint that the task queue pushes jobs to.

The queue retries every response that is not 2xx, so the status code
sets what it does next, not only what happened:

- 2xx: done with this task, including "can never succeed" (unknown job,
  malformed payload, last attempt failed), which is recorded first;
- 503 with Retry-After: try again later (job leased by another delivery,
  Redis or a data dependency down with attempts left);
- 500: unexpected error with attempts left.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import require_worker_caller
from app.dispatch.base import WORKER_PATH
from app.errors import ApiError, error_response, read_body
from app.runner import Outcome, run_job
from app.services import services_of
from jobstore.errors import JobFinished, LeaseHeld

logger = logging.getLogger(__name__)

DELIVERY_HEADER_PREFIX = "x-cloudtasks-"
RETRY_COUNT_PATTERN = re.compile(r"[0-9]{1,9}")
# Cloud Tasks bodies are at most 100 KB; a larger payload cannot be ours.
MAX_PAYLOAD_BYTES = 100 * 1024


class InvalidPayload(ValueError):
    def __init__(self, reason: str, job_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id


@dataclass(frozen=True)
class Delivery:
    """The task-queue headers of one delivery, as recorded in the job's events."""

    headers: dict[str, str]

    @property
    def retry_count(self) -> int | None:
        value = self.headers.get("X-CloudTasks-TaskRetryCount", "")
        return int(value) if RETRY_COUNT_PATTERN.fullmatch(value) else None


async def run_daily_worker(request: Request) -> Response:
    services = services_of(request)
    await require_worker_caller(
        request,
        local_key=services.local_dispatch_key,
        verifier=services.oidc_verifier,
        auth_disabled=services.settings.internal_auth_disabled,
    )
    delivery = _delivery_of(request)
    try:
        job_id = parse_worker_payload(await read_body(request, MAX_PAYLOAD_BYTES))
    except ApiError as exc:
        return await _reject_payload(request, InvalidPayload(exc.message), delivery)
    except InvalidPayload as exc:
        return await _reject_payload(request, exc, delivery)

    # The created event, not the payload, defines what to run, so a stale or
    # hand-made payload cannot change a job's parameters.
    params = await services.store.params(job_id)
    if params is None:
        logger.warning("delivery for unknown job", extra={"job_id": job_id})
        return _done("unknown_job", job_id, f"job {job_id} not found; nothing to run")

    try:
        lease = await services.store.start(job_id, delivery=delivery.headers)
    except JobFinished as exc:
        return _done("already_finished", job_id, f"job is already {exc.status.value}")
    except LeaseHeld as exc:
        retry_after_s = max(1, -(-exc.lease_left_ms // 1000))
        logger.info("delivery while another runs the job", extra={"job_id": job_id})
        return error_response(
            503,
            f"job {job_id} is running in another delivery; retry after its lease",
            headers={"Retry-After": str(retry_after_s)},
            job_id=job_id,
        )

    # The queue's count decides the last attempt, but the job's own count of
    # started attempts wins when higher: a local delivery chain restarts its
    # count, and a job that keeps killing its process must still run out.
    queue_attempt = (delivery.retry_count or 0) + 1
    attempt = max(queue_attempt, lease.attempt)
    outcome = await run_job(services, lease, params, attempt=attempt, delivery=delivery.headers)
    return _outcome_response(job_id, outcome)


def parse_worker_payload(body: bytes) -> str:
    """Return the job id of a delivery body; raise InvalidPayload when it has none."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload(f"payload is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidPayload("payload must be a JSON object with job_id")
    job_id = doc.get("job_id")
    if not isinstance(job_id, str) or not 0 < len(job_id) <= 200:
        raise InvalidPayload("payload job_id is missing or not a string of 1 to 200 characters")
    return job_id


async def _reject_payload(request: Request, exc: InvalidPayload, delivery: Delivery) -> Response:
    logger.error("rejected worker payload", extra={"error": exc.reason, **delivery.headers})
    return _done("rejected", exc.job_id, exc.reason)


def _outcome_response(job_id: str, outcome: Outcome) -> Response:
    if outcome.retry_after_s is not None:
        return error_response(
            outcome.status_code,
            outcome.detail,
            headers={"Retry-After": str(outcome.retry_after_s)},
            job_id=job_id,
            outcome=outcome.name,
        )
    return _done(outcome.name, job_id, outcome.detail, status_code=outcome.status_code)


def _done(name: str, job_id: str | None, detail: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        {"outcome": name, "job_id": job_id, "detail": detail}, status_code=status_code
    )


def _delivery_of(request: Request) -> Delivery:
    headers = {
        _canonical(name): value
        for name, value in request.headers.items()
        if name.lower().startswith(DELIVERY_HEADER_PREFIX)
    }
    return Delivery(headers)


def _canonical(name: str) -> str:
    # "x-cloudtasks-taskretrycount" -> "X-CloudTasks-TaskRetryCount", as documented.
    rest = name[len(DELIVERY_HEADER_PREFIX) :]
    known = {
        "queuename": "QueueName",
        "taskname": "TaskName",
        "taskretrycount": "TaskRetryCount",
        "taskexecutioncount": "TaskExecutionCount",
        "tasketa": "TaskETA",
        "taskpreviousresponse": "TaskPreviousResponse",
        "taskretryreason": "TaskRetryReason",
    }
    return "X-CloudTasks-" + known.get(rest.lower(), rest)


routes = [Route(WORKER_PATH, run_daily_worker, methods=["POST"])]
