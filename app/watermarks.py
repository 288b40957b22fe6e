"""The ingestion watermark kept in Redis, so it outlives a Cloud Run container.

A file next to the points file would be lost with the container's disk, and
the next run would then re-ingest every bar: the same points, but slower.
The ingestion runs in a worker thread, so this storage uses a synchronous
Redis client of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from redis import exceptions as redis_errors
from redis.client import Pipeline

from ingestion.errors import TransientIngestionError
from jobstore import keys


class RedisWatermarkStorage:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )
        self.description = f"Redis key {keys.WATERMARK}"

    def read(self) -> str | None:
        try:
            text: str | None = self._client.get(keys.WATERMARK)  # type: ignore[assignment]
        except redis_errors.RedisError as exc:
            # Watermark.load treats OSError as "no watermark": a full, idempotent re-ingest.
            raise OSError(f"reading {keys.WATERMARK} failed: {exc}") from exc
        return text

    def update(self, merge: Callable[[str | None], str]) -> None:
        """Apply `merge` with WATCH and MULTI, retrying when another run wrote in between."""
        try:
            self._client.transaction(lambda pipe: self._merge_in(pipe, merge), keys.WATERMARK)
        except redis_errors.RedisError as exc:
            raise TransientIngestionError(f"saving {keys.WATERMARK} failed: {exc}") from exc

    @staticmethod
    def _merge_in(pipe: Pipeline, merge: Callable[[str | None], str]) -> None:
        stored: str | None = pipe.get(keys.WATERMARK)  # type: ignore[assignment]
        text = merge(stored)
        pipe.multi()
        pipe.set(keys.WATERMARK, text)

    def close(self) -> None:
        self._client.close()
