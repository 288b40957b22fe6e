"""The CLI's SSE reader: a job stream cut before the job's final event is resumed."""

from __future__ import annotations

import httpx
import pytest

from app import sse_client
from app.sse_client import StreamFailed, follow

PATH = "/api/v1/ingest/jobs/j/stream"


def sse(*events: tuple[str, str]) -> bytes:
    return b"".join(
        f'id: {event_id}\nevent: {kind}\ndata: {{"type": "{kind}"}}\n\n'.encode()
        for event_id, kind in events
    )


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_client, "RECONNECT_BACKOFF_S", (0.0,))


def test_cut_stream_resumes_until_final_event() -> None:
    seen_resume_ids: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resume_id = request.headers.get("Last-Event-ID")
        seen_resume_ids.append(resume_id)
        if resume_id is None:
            # The instance shuts down after two events: a clean end mid-job.
            return httpx.Response(200, content=sse(("0-1", "created"), ("0-2", "started")))
        return httpx.Response(200, content=sse(("0-3", "completed")))

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test") as client:
        events = [message.event for message in follow(client, PATH)]

    assert events == ["created", "started", "completed"]
    assert seen_resume_ids == [None, "0-2"]


def test_stream_ending_after_final_event_returns() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=sse(("0-1", "created"), ("0-2", "failed")))

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test") as client:
        events = [message.event for message in follow(client, PATH)]

    assert events == ["created", "failed"]
    assert calls == 1


def test_stream_that_never_finishes_gives_up() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"")

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test") as client:
        with pytest.raises(StreamFailed):
            list(follow(client, PATH))
