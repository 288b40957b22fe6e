"""The public ingest API that n8n calls, and job re-runs for support staff."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import require_ingest_token
from app.dispatch.base import DispatchError, TaskPayload
from app.errors import ApiError, error_response, read_body
from app.params import parse_job_event_id
from app.services import services_of
from ingestion.markets import normalize_ticker
from jobstore.errors import (
    IdempotencyConflict,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    LeaseHeld,
)
from jobstore.events import JobStatus
from jobstore.legacy import LegacyRecordError
from jobstore.store import JobStore

logger = logging.getLogger(__name__)

MAX_TICKERS = 1000
MAX_TICKER_LENGTH = 32
EARLIEST_DATE = date(1970, 1, 1)
# Largest request body read: 1000 tickers fit in a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
# Fixed namespace for job ids derived from an Idempotency-Key.
IDEMPOTENT_JOB_NAMESPACE = uuid.UUID("5f0c8a63-3f47-4a55-9a53-6f1f2d0e8b41")
MAX_JOB_ID_LENGTH = 200


async def run_daily(request: Request) -> Response:
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token)
    params = parse_run_daily_body(await read_body(request, MAX_BODY_BYTES))
    key = request.headers.get("Idempotency-Key")
    job_id = _job_id_for(key)
    fingerprint = _fingerprint(params) if key is not None else None

    try:
        view, created = await services.store.create(job_id, params, fingerprint=fingerprint)
    except IdempotencyConflict as exc:
        raise ApiError(422, str(exc), field="Idempotency-Key") from None
    if created or (view.status is JobStatus.QUEUED and view.attempts == 0):
        failure = await dispatch_job(request, job_id, params)
        if failure is not None:
            return failure
        view = await services.store.get(job_id) or view
    logger.info("job accepted", extra={"job_id": job_id, "job_created": created})
    return JSONResponse(view.to_json(), status_code=202 if created else 200)


async def get_job(request: Request) -> Response:
    """Return the job JSON; with `?at=0-N`, the JSON as it was right after event N.

    An id without an event stream is looked up among the Celery-era
    `job:<id>` hashes before the response is 404.
    """
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token)
    job_id = request.path_params["job_id"]
    at = request.query_params.get("at")
    version = parse_job_event_id(at, "at", allow_start=False) if at is not None else None
    if len(job_id) > MAX_JOB_ID_LENGTH:
        return job_not_found(job_id)
    if version is not None:
        return await _replay(services.store, job_id, version)

    view = await services.store.get(job_id)
    if view is None:
        return await _legacy_job(services.store, job_id)
    return JSONResponse(view.to_json())


async def rerun_job(request: Request) -> Response:
    """Queue a finished job again as a new job linked to it, and dispatch the new job."""
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token)
    job_id = request.path_params["job_id"]
    if len(job_id) > MAX_JOB_ID_LENGTH:
        return job_not_found(job_id)
    try:
        view, created = await services.store.rerun(job_id)
    except JobNotFound:
        return job_not_found(job_id)
    except JobNotFinished as exc:
        return error_response(
            409,
            f"job {job_id} is still {exc.status.value}: only a completed or failed job "
            "can be re-run; wait until it finishes",
            job_id=job_id,
            status=exc.status.value,
        )

    if view.status is JobStatus.QUEUED and view.attempts == 0:
        params = await services.store.params(view.job_id) or {}
        failure = await dispatch_job(request, view.job_id, params)
        if failure is not None:
            return failure
        view = await services.store.get(view.job_id) or view
    logger.info("job re-run", extra={"job_id": view.job_id, "rerun_of": job_id})
    return JSONResponse(
        {"rerun_of": job_id, "job": view.to_json()},
        status_code=202 if created else 200,
        headers={"Location": f"/api/v1/ingest/jobs/{view.job_id}"},
    )


def job_not_found(job_id: str) -> JSONResponse:
    return error_response(404, f"job {job_id} not found", job_id=job_id)


async def dispatch_job(request: Request, job_id: str, params: dict[str, Any]) -> Response | None:
    """Hand a queued job to the dispatcher; return None, or the 503 response on failure.

    When the dispatcher raises DispatchError, the job is recorded as failed
    before the 503 is returned, so nothing is left half-queued.
    """
    payload = TaskPayload(job_id, params.get("date"), _tickers_of(params))
    try:
        await services_of(request).dispatcher.dispatch(payload)
    except DispatchError as exc:
        return await _record_dispatch_failure(request, job_id, exc)
    return None


async def _replay(store: JobStore, job_id: str, version: int) -> Response:
    view = await store.view_at(job_id, version)
    if view is not None:
        return JSONResponse(view.to_json())
    if await store.get(job_id) is None:
        return job_not_found(job_id)
    return error_response(
        404,
        f"job {job_id} has no event 0-{version}; GET its /events for the ids it has",
        field="at",
        job_id=job_id,
    )


async def _legacy_job(store: JobStore, job_id: str) -> Response:
    try:
        view = await store.get_legacy(job_id)
    except LegacyRecordError as exc:
        # 422 and not 404 or 5xx: the job exists, and reading it again cannot
        # succeed. The raw fields go along so that no stored data is hidden.
        logger.error("unreadable legacy job record", extra={"job_id": job_id, "error": str(exc)})
        return error_response(
            422,
            f"{exc}: the Celery-era record cannot be shown as job JSON; "
            "its stored fields are in legacy_record",
            job_id=job_id,
            legacy_record=await store.get_legacy_record(job_id),
        )
    if view is None:
        return job_not_found(job_id)
    return JSONResponse(view.to_json())


def parse_run_daily_body(body: bytes) -> dict[str, Any]:
    """Validate the optional JSON body of run-daily; raise ApiError naming the field."""
    if not body.strip():
        return {"date": None, "tickers": None}
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to convert.
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "request body must be a JSON object")
    ignored = sorted(set(doc) - {"date", "tickers"})
    if ignored:
        logger.warning("ignoring unknown fields in run-daily body", extra={"fields": ignored})
    return {"date": _parse_date(doc.get("date")), "tickers": _parse_tickers(doc.get("tickers"))}


def _parse_date(value: Any) -> str | None:
    if value is None:
        return None
    expected = "expected a trading day as YYYY-MM-DD"
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ApiError(422, f"date {value!r} is invalid: {expected}", field="date")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422, f"date {value!r} is not a calendar date: {expected}", field="date"
        ) from None
    # A day ahead of UTC covers "today" in Tokyo; later days have no bars yet.
    latest = datetime.now(UTC).date() + timedelta(days=1)
    if not EARLIEST_DATE <= day <= latest:
        raise ApiError(
            422,
            f"date {value} is out of range: expected {EARLIEST_DATE} to {latest}",
            field="date",
        )
    return value


def _parse_tickers(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ApiError(
            422, "tickers is invalid: expected a non-empty list of ticker strings", field="tickers"
        )
    if len(value) > MAX_TICKERS:
        raise ApiError(
            422,
            f"tickers has {len(value)} entries: expected at most {MAX_TICKERS}",
            field="tickers",
        )
    canonical = []
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_TICKER_LENGTH:
            raise ApiError(
                422,
                f"tickers contains {item!r}: expected a ticker string such as 7203.T or AAPL",
                field="tickers",
            )
        try:
            canonical.append(normalize_ticker(item).ticker)
        except ValueError as exc:
            raise ApiError(422, f"tickers is invalid: {exc}", field="tickers") from None
    # Canonical forms, so `7203` and `7203.T` are one ticker and one idempotency fingerprint.
    return list(dict.fromkeys(canonical))


def _job_id_for(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(idempotency_key):
        raise ApiError(
            400,
            "Idempotency-Key is invalid: expected 1 to 255 printable ASCII characters "
            "without spaces",
            field="Idempotency-Key",
        )
    return str(uuid.uuid5(IDEMPOTENT_JOB_NAMESPACE, idempotency_key))


def _fingerprint(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _tickers_of(params: dict[str, Any]) -> tuple[str, ...] | None:
    tickers = params.get("tickers")
    return tuple(tickers) if tickers is not None else None


async def _record_dispatch_failure(request: Request, job_id: str, exc: DispatchError) -> Response:
    reason = f"could not enqueue the job: {exc.reason}"
    logger.error("dispatch failed", extra={"job_id": job_id, "error": exc.reason})
    try:
        await services_of(request).store.fail(job_id, reason)
    except (JobFinished, LeaseHeld):
        # A delivery got through after all; the job's own events tell its fate.
        logger.info(
            "dispatch failure not recorded: job already delivered", extra={"job_id": job_id}
        )
    return error_response(503, reason, job_id=job_id, headers={"Retry-After": "30"})


routes = [
    Route("/api/v1/ingest/run-daily", run_daily, methods=["POST"]),
    Route("/api/v1/ingest/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/api/v1/ingest/jobs/{job_id}/rerun", rerun_job, methods=["POST"]),
]
