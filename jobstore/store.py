"""The job store: guarded appends to per-job Redis Streams.

Each write reads the job's snapshot, folds the new event into it in Python
and hands both to a Lua script that checks the version and the transition
rules and appends, all in one server-side step. A version conflict means
another writer came first: the store reads again and retries, and the
transition rules then decide.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from jobstore import keys, projection
from jobstore.errors import (
    IdempotencyConflict,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    JobStoreError,
    LeaseHeld,
    LeaseLost,
    guard_unavailable,
)
from jobstore.events import EventType, JobEvent, JobStatus, utc_now
from jobstore.legacy import view_from_legacy
from jobstore.listing import JobPage, list_jobs
from jobstore.projection import JobView

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Version conflicts only happen when writers race on one job; each retry
# re-reads the state, so a handful of rounds is plenty.
MAX_CONFLICT_RETRIES = 8

# Fixed namespace for the ids of re-run jobs.
RERUN_NAMESPACE = uuid.UUID("0b7f3d7e-2a39-4c4e-8f0e-5e6f1c9a4d21")


@dataclass(frozen=True)
class Lease:
    """The right of one delivery to run a job, until renewals stop."""

    job_id: str
    lease_id: str
    attempt: int


@dataclass(frozen=True)
class _Snapshot:
    version: int
    view: JobView | None


@dataclass(frozen=True)
class Retention:
    """How long finished jobs and global stream entries are kept, in seconds."""

    completed_s: int = 7 * 86_400
    failed_s: int = 30 * 86_400
    global_stream_s: int = 7 * 86_400

    def keep_s(self, status: JobStatus) -> int:
        if status is JobStatus.COMPLETED:
            return self.completed_s
        if status is JobStatus.FAILED:
            return self.failed_s
        return 0


class JobStore:
    def __init__(
        self, redis: Redis, *, lease_ms: int = 60_000, retention: Retention | None = None
    ) -> None:
        self._redis = redis
        self.lease_ms = lease_ms
        self.retention = retention or Retention()
        self._append_script = redis.register_script(_read_script("append.lua"))
        self._renew_script = redis.register_script(_read_script("renew.lua"))

    async def create(
        self,
        job_id: str,
        params: dict[str, Any],
        *,
        fingerprint: str | None = None,
        rerun_of: str | None = None,
    ) -> tuple[JobView, bool]:
        """Create a queued job; return its view and whether this call created it.

        Creating an existing job returns it unchanged, which makes a
        deterministic job id (from an Idempotency-Key) safe to repeat.
        Raises IdempotencyConflict when the existing job was created with
        another fingerprint.
        """
        data: dict[str, Any] = {"params": params}
        if fingerprint is not None:
            data["fingerprint"] = fingerprint
        if rerun_of is not None:
            data["rerun_of"] = rerun_of
        event = JobEvent(EventType.CREATED, utc_now(), data=data)
        outcome = await self._guard(
            self._append(job_id, EventType.CREATED, lambda _: event, lease_id="")
        )
        if outcome != "exists":
            return await self._require_view(job_id), True

        first = await self.events(job_id, limit=1)
        if first and first[0].data.get("fingerprint") != fingerprint:
            raise IdempotencyConflict(job_id)
        return await self._require_view(job_id), False

    async def lease_expired_ms(self, job_id: str) -> int | None:
        """Return how long ago a running job's lease expired, or None if it is live or not running.

        Measured on the Redis server's clock, like the lease itself.
        """
        status, lease_until = await self._guard(
            self._redis.hmget(keys.state_key(job_id), ["status", "lease_until_ms"])
        )
        if status != JobStatus.RUNNING.value:
            return None
        expired_ms = await self._server_time_ms() - int(lease_until or 0)
        return expired_ms if expired_ms >= 0 else None

    async def seconds_since(self, moment: datetime) -> int:
        """Return whole seconds from `moment` to now on the Redis server's clock."""
        return (await self._server_time_ms() - _epoch_ms(moment)) // 1000

    async def _server_time_ms(self) -> int:
        seconds, microseconds = await self._guard(self._redis.time())
        return int(seconds) * 1000 + int(microseconds) // 1000

    async def version(self, job_id: str) -> int:
        """Return the number of events the job has, 0 for an unknown job."""
        stored = await self._guard(self._redis.hget(keys.state_key(job_id), "version"))
        return int(stored or 0)

    async def ping(self) -> None:
        """Raise JobStoreUnavailable unless Redis replies to PING."""
        await self._guard(self._redis.ping())

    async def get(self, job_id: str) -> JobView | None:
        """Return the job's current view, read from its snapshot in one command."""
        doc = await self._guard(self._redis.hget(keys.state_key(job_id), "view"))
        return JobView.from_json(json.loads(doc)) if doc else None

    async def view_at(self, job_id: str, version: int) -> JobView | None:
        """Return the job's view as it was right after event `version`.

        Folds the stream from its first event up to and including that one,
        which gives the JSON the status endpoint returned at that moment.
        Returns None for an unknown job or a version past the last event.
        """
        entries = await self._guard(
            self._redis.xrange(keys.events_key(job_id), min="-", max=f"0-{version}")
        )
        if not entries or _text(entries[-1][0]) != f"0-{version}":
            return None
        events = [
            JobEvent.from_fields(_text(entry_id), _decode(fields)) for entry_id, fields in entries
        ]
        return projection.fold(job_id, events)

    async def get_legacy(self, job_id: str) -> JobView | None:
        """Return a Celery-era job from its old `job:<id>` hash, or None.

        Raises LegacyRecordError when the hash cannot be read as a job.
        """
        record = await self.get_legacy_record(job_id)
        return view_from_legacy(job_id, record) if record else None

    async def get_legacy_record(self, job_id: str) -> dict[str, str]:
        """Return the fields of the old `job:<id>` hash as stored; empty when there is none.

        A `job:<id>` key of another type is not a job record, so it counts as none.
        """
        try:
            record = await self._guard(self._redis.hgetall(keys.legacy_job_key(job_id)))
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            logger.warning("legacy job key is not a hash", extra={"job_id": job_id})
            return {}
        return _decode(record)

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        since_ms: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Return one page of jobs, newest first; see jobstore.listing."""
        return await self._guard(
            list_jobs(self._redis, status=status, since_ms=since_ms, limit=limit, cursor=cursor)
        )

    async def all_jobs(self, status: JobStatus, page_size: int = 100) -> AsyncIterator[JobView]:
        """Yield every job now in `status`, newest first, reading the index page by page."""
        cursor = None
        while True:
            page = await self.list_jobs(status=status, limit=page_size, cursor=cursor)
            for view in page.jobs:
                yield view
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def params(self, job_id: str) -> dict[str, Any] | None:
        """Return the parameters recorded in the job's created event, or None for no job."""
        first = await self.events(job_id, limit=1)
        if not first or first[0].type is not EventType.CREATED:
            return None
        params: dict[str, Any] = first[0].data.get("params", {})
        return params

    async def events(
        self, job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> list[JobEvent]:
        """Return the job's events in order, starting after the entry ID `after`."""
        start = f"({after}" if after else "-"
        entries = await self._guard(
            self._redis.xrange(keys.events_key(job_id), min=start, max="+", count=limit)
        )
        return [
            JobEvent.from_fields(_text(entry_id), _decode(fields)) for entry_id, fields in entries
        ]

    async def start(self, job_id: str, *, delivery: dict[str, str] | None = None) -> Lease:
        """Start a new attempt of a queued job, or take over one whose lease expired.

        Raises JobNotFound, JobFinished, or LeaseHeld while another delivery
        holds a live lease.
        """
        lease_id = uuid.uuid4().hex

        def build(view: JobView) -> JobEvent:
            return JobEvent(
                EventType.STARTED,
                utc_now(),
                attempt=view.attempts + 1,
                data={"lease_id": lease_id},
                delivery=delivery,
            )

        outcome = await self._guard(
            self._append(job_id, EventType.STARTED, build, lease_id=lease_id)
        )
        self._raise_rejection(job_id, outcome)
        view = await self._require_view(job_id)
        return Lease(job_id, lease_id, view.attempts)

    async def renew(self, lease: Lease) -> None:
        """Extend the lease by `lease_ms`; raise LeaseLost if it was taken over."""
        lease_until = await self._guard(
            self._renew_script(
                keys=[keys.state_key(lease.job_id)], args=[lease.lease_id, self.lease_ms]
            )
        )
        if not lease_until:
            raise LeaseLost(lease.job_id)

    async def progress(self, lease: Lease, percent: int, message: str) -> None:
        data = {"percent": max(0, min(100, percent)), "message": message}
        await self._append_under_lease(lease, EventType.PROGRESS, data)

    async def complete(self, lease: Lease, result: dict[str, Any]) -> None:
        await self._append_under_lease(lease, EventType.COMPLETED, {"result": result})

    async def fail_attempt(
        self, lease: Lease, error: str, *, delivery: dict[str, str] | None = None
    ) -> None:
        """Record a retryable failure: the job goes back to queued for the next delivery."""
        await self._append_under_lease(
            lease, EventType.ATTEMPT_FAILED, {"error": error}, delivery=delivery
        )

    async def fail(
        self,
        job_id: str,
        error: str,
        *,
        lease: Lease | None = None,
        delivery: dict[str, str] | None = None,
    ) -> None:
        """Record the job as failed for good.

        Without a lease this is allowed only while no delivery runs the job,
        that is while it is queued or its lease has expired. Raises
        JobFinished or LeaseHeld otherwise, and LeaseLost when the given
        lease was lost.
        """
        if lease is not None:
            await self._append_under_lease(
                lease, EventType.FAILED, {"error": error}, delivery=delivery
            )
            return

        def build(view: JobView) -> JobEvent:
            return JobEvent(
                EventType.FAILED,
                utc_now(),
                attempt=view.attempts,
                data={"error": error},
                delivery=delivery,
            )

        outcome = await self._guard(self._append(job_id, EventType.FAILED, build, lease_id=""))
        self._raise_rejection(job_id, outcome)

    async def rerun(self, job_id: str) -> tuple[JobView, bool]:
        """Queue a new job with the parameters of a finished one, and link the two.

        Returns the new job's view and whether this call created it. The new
        job's created event names the old job (`rerun_of`), and the old job
        gets one `rerun_requested` event naming the new one. A job finishes
        only once, so its re-run id derives from its own id: repeating the
        request, even concurrently, returns the same new job. To run it
        again after that, re-run the new job. Raises JobNotFound, or
        JobNotFinished while the job is queued or running.
        """
        view = await self.get(job_id)
        if view is None:
            raise JobNotFound(job_id)
        if not view.status.is_terminal:
            raise JobNotFinished(job_id, view.status)
        params = await self.params(job_id) or {}
        new_id = str(uuid.uuid5(RERUN_NAMESPACE, job_id))

        new_view, created = await self.create(new_id, params, rerun_of=job_id)
        if created or not await self._links_to(job_id, new_id):
            await self._link_rerun(job_id, new_id)
        return new_view, created

    async def _links_to(self, job_id: str, new_id: str) -> bool:
        events = await self._guard(self._redis.xrevrange(keys.events_key(job_id), count=1))
        if not events:
            return False
        last = JobEvent.from_fields(_text(events[0][0]), _decode(events[0][1]))
        return last.type is EventType.RERUN_REQUESTED and last.data.get("rerun_job_id") == new_id

    async def _link_rerun(self, job_id: str, new_id: str) -> None:
        def build(old: JobView) -> JobEvent:
            return JobEvent(
                EventType.RERUN_REQUESTED, utc_now(), old.attempts, {"rerun_job_id": new_id}
            )

        # Two requests racing past _links_to send the same key, and the
        # second is then recognised as a repeat of the first.
        outcome = await self._guard(
            self._append(
                job_id, EventType.RERUN_REQUESTED, build, lease_id="", event_key=f"rerun:{new_id}"
            )
        )
        self._raise_rejection(job_id, outcome)

    async def _append_under_lease(
        self,
        lease: Lease,
        event_type: EventType,
        data: dict[str, Any],
        *,
        delivery: dict[str, str] | None = None,
    ) -> None:
        def build(_: JobView) -> JobEvent:
            return JobEvent(event_type, utc_now(), lease.attempt, data, delivery)

        outcome = await self._guard(
            self._append(lease.job_id, event_type, build, lease_id=lease.lease_id)
        )
        self._raise_rejection(lease.job_id, outcome)

    async def _append(
        self,
        job_id: str,
        event_type: EventType,
        build: Callable[[JobView], JobEvent],
        *,
        lease_id: str,
        event_key: str | None = None,
    ) -> Any:
        """Append the event that `build` returns for the current view.

        `event_key` makes the append idempotent: the script skips an event
        whose key equals the last stored event's. Returns "ok" or the
        script's rejection as a tuple (reason, status, lease_left_ms);
        "exists" for a second create.
        """
        event_key = event_key or uuid.uuid4().hex
        for _ in range(MAX_CONFLICT_RETRIES):
            snapshot = await self._read_snapshot(job_id)
            if snapshot.view is None and event_type is not EventType.CREATED:
                return ("not_found", "", 0)
            if snapshot.view is not None and event_type is EventType.CREATED:
                return "exists"
            event = build(snapshot.view)  # type: ignore[arg-type]
            view = projection.apply(snapshot.view, job_id, event)

            reply = await self._append_script(
                keys=keys.append_keys(job_id),
                args=[
                    snapshot.version,
                    event_key,
                    event.type.value,
                    lease_id,
                    self.lease_ms,
                    json.dumps(view.to_json(), separators=(",", ":")),
                    view.status.value,
                    job_id,
                    _epoch_ms(view.created_at),
                    self.retention.keep_s(view.status),
                    self._oldest_global_id(),
                    *_flatten(event.to_fields()),
                ],
            )
            kind = _text(reply[0])
            if kind in ("ok", "duplicate"):
                return "ok"
            if kind == "rejected":
                reason = _text(reply[1])
                return "exists" if reason == "exists" else (reason, _text(reply[2]), int(reply[3]))
            logger.debug("version conflict on job append", extra={"job_id": job_id})
        raise JobStoreError(f"job {job_id}: gave up after {MAX_CONFLICT_RETRIES} version conflicts")

    def _oldest_global_id(self) -> str:
        return f"{_epoch_ms(utc_now()) - self.retention.global_stream_s * 1000}-0"

    async def _read_snapshot(self, job_id: str) -> _Snapshot:
        version, doc = await self._redis.hmget(keys.state_key(job_id), ["version", "view"])
        view = JobView.from_json(json.loads(doc)) if doc else None
        return _Snapshot(int(version or 0), view)

    async def _require_view(self, job_id: str) -> JobView:
        view = await self.get(job_id)
        if view is None:
            raise JobNotFound(job_id)
        return view

    @staticmethod
    def _raise_rejection(job_id: str, outcome: Any) -> None:
        if outcome == "ok":
            return
        reason, status, lease_left_ms = outcome
        if reason == "not_found":
            raise JobNotFound(job_id)
        if reason == "finished":
            raise JobFinished(job_id, JobStatus(status))
        if reason == "leased":
            raise LeaseHeld(job_id, lease_left_ms)
        if reason == "lease_lost":
            raise LeaseLost(job_id)
        if reason == "not_finished":
            raise JobNotFinished(job_id, JobStatus(status))
        raise JobStoreError(f"job {job_id}: unexpected rejection {reason!r}")

    @staticmethod
    async def _guard(call: Awaitable[T]) -> T:
        return await guard_unavailable(call)


def _read_script(name: str) -> str:
    return resources.files("jobstore").joinpath(name).read_text(encoding="utf-8")


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _flatten(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in fields.items()}
