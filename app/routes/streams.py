"""Live job events as Server-Sent Events (SSE), for dashboards.

Each SSE event has `id` = the stream entry ID, `event` = the event type and
`data` = the event JSON (with job_id). A client resumes after a dropped
connection by sending the last ID it received in the Last-Event-ID header
(EventSource does this by itself) or the `last_event_id` query parameter.
The header wins, because EventSource reconnects to the same URL and only
the header carries the newest ID.

Everything that can fail before the stream starts (token, parameters,
unknown job, Redis down, no free stream slot) gets a JSON error response.
A Redis failure after the start ends the stream with a `stream_error` event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import require_ingest_token
from app.errors import ApiError
from app.live import StreamSlot
from app.params import parse_global_event_id, parse_job_event_id
from app.routes.jobs import MAX_JOB_ID_LENGTH, job_not_found
from app.services import Services, services_of
from jobstore.errors import JobStoreUnavailable
from jobstore.tail import StreamEntry, follow_global, follow_job, last_global_id

logger = logging.getLogger(__name__)

LAST_EVENT_ID_HEADER = "Last-Event-ID"
LAST_EVENT_ID_PARAMETER = "last_event_id"
# Reconnection delay that EventSource should use after a stream_error event.
ERROR_RETRY_MS = 5_000
# A send that a stalled client does not take within this time ends the stream.
SEND_TIMEOUT_S = 30.0


async def job_stream(request: Request) -> Response:
    """Stream one job's events from its start (or after Last-Event-ID) until it finishes.

    A finished job with nothing after Last-Event-ID gets 204, because the
    HTML standard makes EventSource stop reconnecting on that status.
    """
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token, allow_query=True)
    job_id = request.path_params["job_id"]
    resume_id = _resume_id(request)
    after = "0-0"
    if resume_id is not None:
        version = parse_job_event_id(resume_id, _resume_source(request), allow_start=True)
        after = f"0-{version}"
    if len(job_id) > MAX_JOB_ID_LENGTH:
        return job_not_found(job_id)
    view = await services.store.get(job_id)
    if view is None:
        return job_not_found(job_id)
    if resume_id is not None and int(after.split("-")[1]) > await services.store.version(job_id):
        # The client saw events this job never had: another job, or a stream that was reset.
        raise ApiError(
            422,
            f"{_resume_source(request)} {resume_id} is past the last event of job {job_id}",
            field=_resume_source(request),
        )
    if view.status.is_terminal and not await services.store.events(job_id, after=after, limit=1):
        return Response(status_code=204)

    slot = services.live.acquire()
    entries = follow_job(
        services.live.redis,
        job_id,
        after=after,
        block_ms=services.live.block_ms,
        finished=view.status.is_terminal,
    )
    return _event_source(services, entries, slot, log_fields={"job_id": job_id})


async def global_stream(request: Request) -> Response:
    """Stream every job's events from now on, or from after Last-Event-ID, without end."""
    services = services_of(request)
    require_ingest_token(request, services.settings.ingest_api_token, allow_query=True)
    resume_id = _resume_id(request)
    resume_after = None
    if resume_id is not None:
        resume_after = parse_global_event_id(resume_id, _resume_source(request))
    slot = services.live.acquire()
    try:
        # Fixed before the response starts, so a client that has the
        # response headers receives every event written after them.
        after = resume_after or await last_global_id(services.live.redis)
    except JobStoreUnavailable:
        slot.release()
        raise
    entries = follow_global(services.live.redis, after=after, block_ms=services.live.block_ms)
    return _event_source(services, entries, slot, log_fields={"after": after})


def _resume_id(request: Request) -> str | None:
    header = request.headers.get(LAST_EVENT_ID_HEADER)
    if header:
        return header
    return request.query_params.get(LAST_EVENT_ID_PARAMETER)


def _resume_source(request: Request) -> str:
    if request.headers.get(LAST_EVENT_ID_HEADER):
        return LAST_EVENT_ID_HEADER
    return LAST_EVENT_ID_PARAMETER


def _event_source(
    services: Services,
    entries: AsyncIterator[StreamEntry],
    slot: StreamSlot,
    *,
    log_fields: dict[str, str],
) -> EventSourceResponse:
    # The background task frees the slot even when the body never starts;
    # the generator frees it as soon as the stream ends.
    return EventSourceResponse(
        _sse_events(entries, slot, log_fields),
        ping=services.settings.sse_ping_s,
        send_timeout=SEND_TIMEOUT_S,
        background=BackgroundTask(slot.release),
    )


async def _sse_events(
    entries: AsyncIterator[StreamEntry], slot: StreamSlot, log_fields: dict[str, str]
) -> AsyncIterator[ServerSentEvent]:
    logger.info("event stream opened", extra=log_fields)
    try:
        async for entry in entries:
            yield ServerSentEvent(
                data=_compact_json(entry.to_json()),
                event=entry.event.type.value,
                id=entry.entry_id,
            )
    except JobStoreUnavailable as exc:
        logger.error(
            "event stream ended: Redis unavailable", extra={**log_fields, "error": str(exc)}
        )
        yield ServerSentEvent(
            data=_compact_json({"error": f"the job store (Redis) is unavailable: {exc}"}),
            event="stream_error",
            retry=ERROR_RETRY_MS,
        )
    finally:
        slot.release()
        logger.info("event stream closed", extra=log_fields)


def _compact_json(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


routes = [
    Route("/api/v1/ingest/stream", global_stream, methods=["GET"]),
    Route("/api/v1/ingest/jobs/{job_id}/stream", job_stream, methods=["GET"]),
]
