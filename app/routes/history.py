"""Job history for support staff: a job's events, and job lists filtered by status and time."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import require_ingest_token
from app.errors import ApiError, error_response
from app.params import parse_job_event_id, parse_limit, parse_since, parse_status
from app.routes.jobs import MAX_JOB_ID_LENGTH, job_not_found
from app.services import services_of
from jobstore.listing import InvalidCursor
from jobstore.store import JobStore
from jobstore.tail import StreamEntry

logger = logging.getLogger(__name__)

DEFAULT_EVENTS_LIMIT = 100
DEFAULT_JOBS_LIMIT = 50
MAX_LIMIT = 1000


async def job_events(request: Request) -> Response:
    """Return one page of a job's events in order, with the cursor of the next page."""
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token)
    job_id = request.path_params["job_id"]
    after = request.query_params.get("after")
    after_version = parse_job_event_id(after, "after", allow_start=True) if after else 0
    limit = parse_limit(
        request.query_params.get("limit"), default=DEFAULT_EVENTS_LIMIT, maximum=MAX_LIMIT
    )
    if len(job_id) > MAX_JOB_ID_LENGTH:
        return job_not_found(job_id)
    if await services.store.get(job_id) is None:
        return await _no_history(services.store, job_id)

    # Reading one event beyond the page shows whether a next page exists.
    events = await services.store.events(job_id, after=f"0-{after_version}", limit=limit + 1)
    page = events[:limit]
    next_cursor = page[-1].id if len(events) > limit else None
    return JSONResponse(
        {
            "job_id": job_id,
            "events": [StreamEntry(str(event.id), job_id, event).to_json() for event in page],
            "next_cursor": next_cursor,
        }
    )


async def list_jobs(request: Request) -> Response:
    """Return one page of jobs, newest first, from the status and creation-time indexes."""
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token)
    query = request.query_params
    status = parse_status(query.get("status"))
    since_ms = parse_since(query.get("since"))
    limit = parse_limit(query.get("limit"), default=DEFAULT_JOBS_LIMIT, maximum=MAX_LIMIT)
    try:
        page = await services.store.list_jobs(
            status=status, since_ms=since_ms, limit=limit, cursor=query.get("cursor")
        )
    except InvalidCursor as exc:
        raise ApiError(
            422, f"{exc}; pass the next_cursor of the previous page", field="cursor"
        ) from None
    return JSONResponse(
        {"jobs": [view.to_json() for view in page.jobs], "next_cursor": page.next_cursor}
    )


async def _no_history(store: JobStore, job_id: str) -> Response:
    if await store.get_legacy_record(job_id):
        return error_response(
            404,
            f"job {job_id} is a Celery-era job: it has no event history, "
            f"only the status that GET /api/v1/ingest/jobs/{job_id} returns",
            job_id=job_id,
        )
    return job_not_found(job_id)


routes = [
    Route("/api/v1/ingest/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/ingest/jobs/{job_id}/events", job_events, methods=["GET"]),
]
