"""Following a job's event stream, or the global one, as new entries arrive.

Each reader loops on XREAD BLOCK from the ID of the last entry it returned,
so entries written between two calls are read by the next one: nothing is
skipped or repeated. The `$` ID is never passed to XREAD. `last_global_id`
resolves it to a concrete ID once, before following starts.

The client given to these functions must have a socket timeout longer than
`block_ms`, or redis-py raises TimeoutError while the server is still
waiting for entries.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobstore import keys
from jobstore.errors import guard_unavailable
from jobstore.events import JobEvent

logger = logging.getLogger(__name__)

# Entries read per XREAD; a larger backlog is read over several calls.
READ_COUNT = 100
# ID before every entry: XREAD from it returns the stream from its start.
STREAM_START = "0-0"


@dataclass(frozen=True)
class StreamEntry:
    """One job event read from a stream, with the ID of the entry that contains it.

    `entry_id` is `0-<version>` in a job's own stream and a Redis-assigned
    time ID in the global stream.
    """

    entry_id: str
    job_id: str
    event: JobEvent

    def to_json(self) -> dict[str, Any]:
        return {**self.event.to_json(), "id": self.entry_id, "job_id": self.job_id}


def job_entry(job_id: str, entry_id: str, fields: dict[str, str]) -> StreamEntry:
    """Read an entry of a job's own stream."""
    return StreamEntry(entry_id, job_id, JobEvent.from_fields(entry_id, fields))


def global_entry(entry_id: str, fields: dict[str, str]) -> StreamEntry:
    """Read an entry of the global stream, which also names the job and the event's version.

    Raises KeyError or ValueError for an entry without those fields.
    """
    event = JobEvent.from_fields(f"0-{fields['version']}", fields)
    return StreamEntry(entry_id, fields["job_id"], event)


async def last_global_id(redis: Redis) -> str:
    """Return the ID of the newest entry of the global stream, or `0-0` when it is empty.

    Following from this ID returns exactly the entries added after the call.
    """
    newest = await guard_unavailable(redis.xrevrange(keys.GLOBAL_EVENTS, count=1))
    return as_text(newest[0][0]) if newest else STREAM_START


async def follow_job(
    redis: Redis,
    job_id: str,
    *,
    after: str = STREAM_START,
    block_ms: int,
    finished: bool = False,
) -> AsyncIterator[StreamEntry]:
    """Yield the job's events after the entry ID `after`, then new ones as they come.

    Stops once the job has finished (completed or failed) and every event
    stored so far has been yielded, so a later `rerun_requested` event is
    included when the stream is read after the re-run. Pass `finished` when
    the job had already finished before the call: `after` may lie past its
    final event, which this function would then never read. Raises
    JobStoreUnavailable when Redis cannot be reached.
    """
    stream = keys.events_key(job_id)
    last_id = after
    while True:
        # After the final event, one read without BLOCK collects what is left.
        entries = await _read(redis, stream, last_id, None if finished else block_ms)
        if finished and not entries:
            return
        for entry_id, fields in entries:
            last_id = entry_id
            entry = job_entry(job_id, entry_id, fields)
            finished = finished or entry.event.type.is_terminal
            yield entry


async def follow_global(redis: Redis, *, after: str, block_ms: int) -> AsyncIterator[StreamEntry]:
    """Yield every job's events after the global entry ID `after`, without end.

    Raises JobStoreUnavailable when Redis cannot be reached.
    """
    last_id = after
    while True:
        for entry_id, fields in await _read(redis, keys.GLOBAL_EVENTS, last_id, block_ms):
            last_id = entry_id
            try:
                entry = global_entry(entry_id, fields)
            except (KeyError, ValueError) as exc:
                logger.error(
                    "skipping an unreadable global stream entry",
                    extra={"entry_id": entry_id, "error": repr(exc)},
                )
                continue
            yield entry


async def _read(
    redis: Redis, stream: str, after: str, block_ms: int | None
) -> list[tuple[str, dict[str, str]]]:
    """Return up to READ_COUNT entries after `after`, waiting up to `block_ms` when given."""
    reply = await guard_unavailable(redis.xread({stream: after}, count=READ_COUNT, block=block_ms))
    return [
        (as_text(entry_id), decode_fields(fields))
        for _, entries in reply
        for entry_id, fields in entries
    ]


def as_text(value: bytes | str) -> str:
    """Return a reply value as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def decode_fields(fields: dict[Any, Any]) -> dict[str, str]:
    return {as_text(name): as_text(value) for name, value in fields.items()}
