"""A minimal Server-Sent Events reader for the tests, on top of httpx streaming responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    id: str | None = None
    event: str | None = None
    data_lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def data(self) -> Any:
        return json.loads("\n".join(self.data_lines))


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Yield each event and each comment-only block (heartbeat) of an SSE response."""
    current = SseEvent()
    async for line in response.aiter_lines():
        if line == "":
            if current.data_lines or current.comments or current.event:
                yield current
            current = SseEvent()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data_lines.append(value)
        elif name == "retry":
            current.retry = int(value)


class SseReader:
    """Reads one SSE response; keeps a single line iterator because httpx allows only one."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._events = sse_events(response)

    async def next_block(self) -> SseEvent:
        """Return the next event or heartbeat; raise StopAsyncIteration at the end."""
        return await anext(self._events)

    async def read(self, count: int) -> list[SseEvent]:
        """Read `count` events with data, skipping heartbeats."""
        events: list[SseEvent] = []
        while len(events) < count:
            block = await self.next_block()
            if block.data_lines:
                events.append(block)
        return events

    async def read_to_end(self) -> list[SseEvent]:
        """Read events with data until the server ends the response."""
        return [block async for block in self._events if block.data_lines]
