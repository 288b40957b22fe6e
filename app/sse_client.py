"""A blocking Server-Sent Events client for the command line, on httpx.

`follow` reads an event stream of the API and reconnects after a dropped
connection with Last-Event-ID, so the caller sees every event once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger(__name__)

# Seconds without a byte after which a stream counts as dropped. The server
# sends a heartbeat every SSE_PING_S seconds (15 by default).
STREAM_READ_TIMEOUT_S = 90.0
MAX_RECONNECTS = 5
RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
# Events after which a job's stream ends by design.
FINAL_EVENTS = frozenset({"completed", "failed"})


class StreamFailed(Exception):
    """The stream could not be opened or kept open; the message gives the reason."""


@dataclass
class SseMessage:
    """One event of an SSE stream: `id`, `event` and the `data` lines joined."""

    id: str | None = None
    event: str = "message"
    data_lines: list[str] = field(default_factory=list)
    retry_ms: int | None = None

    @property
    def data(self) -> Any:
        return json.loads("\n".join(self.data_lines))


def parse_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """Yield the events of SSE text lines; comments (heartbeats) are skipped."""
    message = SseMessage()
    for line in lines:
        if line == "":
            if message.data_lines:
                yield message
            message = SseMessage()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            message.id = value
        elif name == "event":
            message.event = value
        elif name == "data":
            message.data_lines.append(value)
        elif name == "retry" and value.isdigit():
            message.retry_ms = int(value)


def follow(
    client: httpx.Client,
    path: str,
    *,
    last_event_id: str | None = None,
    reconnect_at_end: bool = False,
) -> Iterator[SseMessage]:
    """Yield the events of the stream at `path`, reconnecting after failures.

    Returns when the server ends the stream (a finished job) or responds with 204,
    unless `reconnect_at_end` is set, as for the global stream that only
    ends when the server stops. Raises StreamFailed for an error response or
    after MAX_RECONNECTS failed attempts in a row.
    """
    failures = 0
    finished = False
    while True:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            for message in _read_once(client, path, headers):
                failures = 0
                if message.event == "stream_error":
                    raise httpx.RemoteProtocolError(str(message.data.get("error")))
                last_event_id = message.id or last_event_id
                finished = finished or message.event in FINAL_EVENTS
                yield message
            if finished and not reconnect_at_end:
                return
            if not reconnect_at_end:
                # A job stream that ends before the job's final event was cut,
                # for example by the instance shutting down: resume it.
                raise _Unavailable("stream ended before the job finished")
        except _Finished:
            return
        except (httpx.TransportError, _Unavailable) as exc:
            if failures >= MAX_RECONNECTS:
                raise StreamFailed(f"{path}: gave up after {failures} reconnects: {exc}") from exc
            delay_s = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
            failures += 1
            logger.warning(
                "event stream dropped; reconnecting",
                extra={"path": path, "last_event_id": last_event_id, "error": str(exc)},
            )
            time.sleep(delay_s)


class _Finished(Exception):
    """The server responded with 204, so no more events will come."""


class _Unavailable(Exception):
    """The server responded with 503 (Redis down, or no free stream slot): retry later."""


def _read_once(client: httpx.Client, path: str, headers: dict[str, str]) -> Iterator[SseMessage]:
    timeout = httpx.Timeout(client.timeout.connect, read=STREAM_READ_TIMEOUT_S)
    with client.stream("GET", path, headers=headers, timeout=timeout) as response:
        if response.status_code == 204:
            raise _Finished
        if response.status_code == 503:
            response.read()
            raise _Unavailable(f"GET {path} returned 503: {_error_of(response)}")
        if response.status_code != 200:
            response.read()
            raise StreamFailed(f"GET {path} returned {response.status_code}: {_error_of(response)}")
        yield from parse_sse(response.iter_lines())


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text
