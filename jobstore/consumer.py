"""A consumer-group reader of the global event stream, for back-end dashboards.

Processes that share a group name split the stream's entries between them:
Redis delivers each entry to one consumer of the group and keeps it in the
group's pending entries list (PEL) until that consumer acknowledges it with
XACK. `GroupReader.read` returns, in this order:

1. entries this consumer name read before and never acknowledged, so a
   process that restarts under the same name finishes its own work first;
2. entries that any consumer of the group, this one included, left
   pending for `claim_idle_ms` or longer, taken over with XAUTOCLAIM
   (Redis 6.2+): their consumer is presumed dead, or the reply that
   carried them was lost;
3. new entries, waiting up to `block_ms` for them (XREADGROUP BLOCK).

Delivery is at least once: an entry read but not acknowledged before a
crash is delivered again, and a group recreated after NOGROUP starts over
from the oldest entry still in the stream. Consumers should therefore
ignore an event whose (job_id, version) they have already handled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from jobstore import keys
from jobstore.errors import guard_unavailable
from jobstore.tail import StreamEntry, as_text, decode_fields, global_entry

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GroupReader:
    """One consumer of a consumer group on the global event stream.

    The Redis client must have a socket timeout longer than `block_ms`
    (or none), or a read that waits for new entries times out first.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        group: str,
        consumer: str,
        stream: str = keys.GLOBAL_EVENTS,
        block_ms: int = 5_000,
        count: int = 100,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self._redis = redis
        self.group = group
        self.consumer = consumer
        self.stream = stream
        self.block_ms = block_ms
        self.count = count
        self.claim_idle_ms = claim_idle_ms
        # Where the next read of this consumer's own pending entries starts;
        # None once they have all been returned.
        self._own_pending_after: str | None = "0-0"
        self._claim_start = "0-0"
        self._next_claim_at = 0.0

    async def ensure_group(self) -> None:
        """Create the group, and the stream if it is missing; do nothing when both exist.

        A new group starts at the oldest entry in the stream (ID 0), so
        entries written before the first consumer started are delivered too.
        """
        try:
            await self._guard(
                self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            )
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
            return
        logger.info("consumer group created", extra={"stream": self.stream, "group": self.group})

    async def read(self) -> list[StreamEntry]:
        """Return the next entries for this consumer; an empty list when none came in time.

        Raises JobStoreUnavailable when Redis cannot be reached; calling
        again after Redis is back continues where the group left off.
        """
        own = await self._read_own_pending()
        if own:
            return own
        claimed = await self._claim_idle()
        if claimed:
            return claimed
        return await self._parse(await self._read_group(">", block_ms=self.block_ms))

    async def ack(self, *entry_ids: str) -> int:
        """Acknowledge entries so that no consumer receives them again; return how many."""
        if not entry_ids:
            return 0
        acked: int = await self._with_group(
            lambda: self._redis.xack(self.stream, self.group, *entry_ids)
        )
        return acked

    async def _read_own_pending(self) -> list[StreamEntry]:
        while self._own_pending_after is not None:
            raw = await self._read_group(self._own_pending_after, block_ms=None)
            if not raw:
                self._own_pending_after = None
                break
            self._own_pending_after = as_text(raw[-1][0])
            entries = await self._parse(raw)
            if entries:
                return entries
        return []

    async def _read_group(self, start: str, *, block_ms: int | None) -> list[Any]:
        reply = await self._with_group(
            lambda: self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=self.count, block=block_ms
            )
        )
        return [entry for _, entries in reply or [] for entry in entries]

    async def _claim_idle(self) -> list[StreamEntry]:
        # XAUTOCLAIM walks the PEL like SCAN; one call per interval is enough
        # because an entry cannot become claimable sooner than claim_idle_ms.
        now = time.monotonic()
        if now < self._next_claim_at:
            return []
        reply = await self._with_group(
            lambda: self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._claim_start,
                count=self.count,
            )
        )
        # Redis 7 adds a third element: IDs of entries that were trimmed from
        # the stream, which XAUTOCLAIM has already removed from the PEL.
        next_start, raw = as_text(reply[0]), reply[1]
        self._claim_start = next_start
        if next_start == "0-0":
            self._next_claim_at = now + self.claim_idle_ms / 1000
        claimed = await self._parse(raw)
        if claimed:
            logger.info(
                "claimed entries of an idle consumer",
                extra={"group": self.group, "consumer": self.consumer, "entries": len(claimed)},
            )
        return claimed

    async def _parse(self, raw: list[Any]) -> list[StreamEntry]:
        entries: list[StreamEntry] = []
        unreadable: list[str] = []
        for raw_id, fields in raw:
            entry_id = as_text(raw_id)
            if not fields:
                # The entry was trimmed from the stream after it was delivered.
                unreadable.append(entry_id)
                continue
            try:
                entries.append(global_entry(entry_id, decode_fields(fields)))
            except (KeyError, ValueError) as exc:
                logger.error(
                    "skipping an unreadable stream entry",
                    extra={"stream": self.stream, "entry_id": entry_id, "error": repr(exc)},
                )
                unreadable.append(entry_id)
        # Acknowledged here because no consumer could ever process them.
        await self.ack(*unreadable)
        return entries

    async def _with_group(self, command: Any) -> Any:
        """Run a group command, recreating the group once if Redis lost it (NOGROUP).

        The group disappears when its stream key is deleted, or after a
        restart of a Redis that does not persist its data.
        """
        try:
            return await self._guard(command())
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
        logger.warning(
            "consumer group missing; recreating it",
            extra={"stream": self.stream, "group": self.group, "consumer": self.consumer},
        )
        await self.ensure_group()
        self._claim_start = "0-0"
        return await self._guard(command())

    @staticmethod
    async def _guard(call: Awaitable[T]) -> T:
        return await guard_unavailable(call)
