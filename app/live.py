"""The Redis client that Server-Sent Event streams block on, and the cap on open streams.

Each open stream waits in XREAD BLOCK on a connection of its own, so the
shared client (socket timeout 5 s, sized for short commands) is not used.
This client's pool has one connection per allowed stream, and its socket
timeout exceeds the BLOCK time. A request beyond the cap gets 503 before
its stream starts.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app.errors import ApiError

logger = logging.getLogger(__name__)

# How long one XREAD waits for new entries. Waiting longer saves round
# trips; heartbeats and disconnects do not depend on it.
BLOCK_MS = 10_000
# Margin of the socket timeout over BLOCK_MS, for the reply's trip.
SOCKET_TIMEOUT_MARGIN_S = 10.0
# Seconds a client should wait before retrying when every stream slot is taken.
FULL_RETRY_AFTER_S = 10


class StreamSlot:
    """One of the open streams the cap allows; `release` may be called more than once."""

    def __init__(self, streams: LiveStreams) -> None:
        self._streams = streams
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._streams.open_count -= 1


class LiveStreams:
    def __init__(self, redis_url: str, *, max_streams: int) -> None:
        self.max_streams = max_streams
        self.block_ms = BLOCK_MS
        self.open_count = 0
        self.redis = Redis.from_url(
            redis_url,
            decode_responses=True,
            max_connections=max_streams,
            socket_connect_timeout=2,
            socket_timeout=BLOCK_MS / 1000 + SOCKET_TIMEOUT_MARGIN_S,
            # Reads are safe to repeat; the retries ride out a dropped connection.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        )

    def acquire(self) -> StreamSlot:
        """Take a stream slot, or raise a 503 ApiError when all are in use."""
        if self.open_count >= self.max_streams:
            logger.warning(
                "event stream rejected: all slots in use", extra={"max": self.max_streams}
            )
            raise ApiError(
                503,
                f"all {self.max_streams} event-stream slots are in use; retry later",
                headers={"Retry-After": str(FULL_RETRY_AFTER_S)},
            )
        self.open_count += 1
        return StreamSlot(self)

    async def aclose(self) -> None:
        await self.redis.aclose()
