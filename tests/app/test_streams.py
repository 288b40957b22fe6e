"""The Server-Sent Event streams: format, resume without gaps, tokens, limits and outages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from jobstore.store import JobStore
from tests.app.conftest import TOKEN, RunningApp, base_env, serve
from tests.app.sse import SseReader
from tests.servers import RedisServer

JOBS = "/api/v1/ingest/jobs"
GLOBAL_STREAM = "/api/v1/ingest/stream"
# Upper bound for any single read, so that a broken stream fails the test
# instead of hanging it.
READ_TIMEOUT_S = 20


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, lease_ms=30_000)


@asynccontextmanager
async def open_stream(
    running: RunningApp, path: str, **request: object
) -> AsyncIterator[SseReader]:
    """Open an SSE response; leaving the block drops the connection."""
    async with running.client.stream("GET", path, **request) as response:  # type: ignore[arg-type]
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def test_job_stream_replays_then_ends(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id, delivery={"X-CloudTasks-TaskRetryCount": "0"})
    await store.progress(lease, 50, "half")

    async with open_stream(running_app, f"{JOBS}/{job_id}/stream") as reader:
        replayed = await asyncio.wait_for(reader.read(3), READ_TIMEOUT_S)
        await store.complete(lease, {"bars_written": 3})
        rest = await asyncio.wait_for(reader.read_to_end(), READ_TIMEOUT_S)

    events = replayed + rest
    assert [event.id for event in events] == ["0-1", "0-2", "0-3", "0-4"]
    assert [event.event for event in events] == ["created", "started", "progress", "completed"]
    assert [event.data["type"] for event in events] == [event.event for event in events]
    assert all(event.data["job_id"] == job_id for event in events)
    assert events[1].data["delivery"] == {"X-CloudTasks-TaskRetryCount": "0"}
    assert events[2].data["data"] == {"percent": 50, "message": "half"}
    assert events[3].data["data"] == {"result": {"bars_written": 3}}


@pytest.mark.parametrize("resume_by", ["header", "query"])
async def test_job_stream_resumes_without_gaps(
    running_app: RunningApp, store: JobStore, resume_by: str
) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    for percent in (10, 20):
        await store.progress(lease, percent, f"{percent}%")

    async with open_stream(running_app, f"{JOBS}/{job_id}/stream") as reader:
        before = await asyncio.wait_for(reader.read(3), READ_TIMEOUT_S)
    for percent in (30, 40, 50):
        await store.progress(lease, percent, f"{percent}%")
    await store.complete(lease, {})
    last_id = before[-1].id
    assert last_id is not None
    request: dict[str, object] = (
        {"headers": {"Last-Event-ID": last_id}}
        if resume_by == "header"
        else {"params": {"last_event_id": last_id}}
    )
    async with open_stream(running_app, f"{JOBS}/{job_id}/stream", **request) as reader:
        after = await asyncio.wait_for(reader.read_to_end(), READ_TIMEOUT_S)

    ids = [event.id for event in before + after]
    assert ids == [f"0-{version}" for version in range(1, 9)]
    assert [event.data["data"].get("percent") for event in after] == [20, 30, 40, 50, None]


async def test_job_stream_header_wins_over_query(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.complete(lease, {})

    path = f"{JOBS}/{job_id}/stream"
    request = {"headers": {"Last-Event-ID": "0-2"}, "params": {"last_event_id": "0-0"}}
    async with open_stream(running_app, path, **request) as reader:
        events = await asyncio.wait_for(reader.read_to_end(), READ_TIMEOUT_S)

    assert [event.id for event in events] == ["0-3"]


async def test_finished_job_stream_after_end_is_204(
    running_app: RunningApp, store: JobStore
) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.complete(lease, {})
    await store.rerun(job_id)

    path = f"{JOBS}/{job_id}/stream"
    done = await running_app.client.get(path, headers={"Last-Event-ID": "0-4"})
    async with open_stream(running_app, path, headers={"Last-Event-ID": "0-2"}) as reader:
        tail = await asyncio.wait_for(reader.read_to_end(), READ_TIMEOUT_S)

    assert done.status_code == 204
    assert [event.event for event in tail] == ["completed", "rerun_requested"]


async def test_resume_after_final_event_ends(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.complete(lease, {})
    await store.rerun(job_id)

    path = f"{JOBS}/{job_id}/stream"
    async with open_stream(running_app, path, headers={"Last-Event-ID": "0-3"}) as reader:
        tail = await asyncio.wait_for(reader.read_to_end(), READ_TIMEOUT_S)

    assert [event.id for event in tail] == ["0-4"]
    assert [event.event for event in tail] == ["rerun_requested"]


async def test_global_stream_resumes_without_gaps(running_app: RunningApp, store: JobStore) -> None:
    old_job = new_id()
    await store.create(old_job, {})
    written: list[tuple[str, int]] = []

    async def write_job() -> None:
        job_id = new_id()
        await store.create(job_id, {})
        lease = await store.start(job_id)
        await store.complete(lease, {})
        written.extend((job_id, version) for version in (1, 2, 3))

    async with open_stream(running_app, GLOBAL_STREAM) as reader:
        # The start position is fixed before the headers arrive.
        for _ in range(3):
            await write_job()
        before = await asyncio.wait_for(reader.read(5), READ_TIMEOUT_S)
    for _ in range(3):
        await write_job()
    last_id = before[-1].id
    assert last_id is not None
    async with open_stream(
        running_app, GLOBAL_STREAM, headers={"Last-Event-ID": last_id}
    ) as reader:
        after = await asyncio.wait_for(reader.read(len(written) - 5), READ_TIMEOUT_S)
        await write_job()
        live = await asyncio.wait_for(reader.read(3), READ_TIMEOUT_S)

    received = [(event.data["job_id"], event.data["version"]) for event in before + after + live]
    assert received == written
    ids = [event.id for event in before + after + live]
    assert len(set(ids)) == len(ids)
    assert all(event.data["id"] == event.id for event in before + after)
    assert old_job not in {job_id for job_id, _ in received}


async def test_global_stream_resumes_from_query(
    running_app: RunningApp, store: JobStore, redis: Redis
) -> None:
    first = new_id()
    await store.create(first, {})
    [(first_id, _)] = await redis.xrange("ingest:events")
    second = new_id()
    await store.create(second, {})

    async with open_stream(
        running_app, GLOBAL_STREAM, params={"last_event_id": first_id}
    ) as reader:
        [event] = await asyncio.wait_for(reader.read(1), READ_TIMEOUT_S)

    assert event.data["job_id"] == second


async def test_stream_token_in_query(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.complete(lease, {})

    async with httpx.AsyncClient(base_url=running_app.base_url, timeout=30) as anonymous:
        with_query = await anonymous.get(f"{JOBS}/{job_id}/stream", params={"token": TOKEN})
        wrong = await anonymous.get(f"{JOBS}/{job_id}/stream", params={"token": "wrong"})
        missing = await anonymous.get(GLOBAL_STREAM)
        status = await anonymous.get(f"{JOBS}/{job_id}", params={"token": TOKEN})

    assert with_query.status_code == 200
    assert "event: completed" in with_query.text
    assert wrong.status_code == 401
    assert missing.status_code == 401
    assert "token query parameter" in missing.json()["error"]
    assert status.status_code == 401


@pytest.mark.parametrize(
    ("path", "last_event_id"),
    [
        ("job", "3"),
        ("job", "1-3"),
        ("job", "0-x"),
        ("global", "latest"),
        ("global", "$"),
    ],
)
async def test_stream_rejects_invalid_last_event_id(
    running_app: RunningApp, store: JobStore, path: str, last_event_id: str
) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    url = f"{JOBS}/{job_id}/stream" if path == "job" else GLOBAL_STREAM

    by_header = await running_app.client.get(url, headers={"Last-Event-ID": last_event_id})
    by_query = await running_app.client.get(url, params={"last_event_id": last_event_id})

    assert by_header.status_code == 422
    assert by_header.json()["field"] == "Last-Event-ID"
    assert by_query.status_code == 422
    assert by_query.json()["field"] == "last_event_id"


async def test_stream_of_unknown_job_is_404(running_app: RunningApp) -> None:
    response = await running_app.client.get(f"{JOBS}/{new_id()}/stream")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


async def test_stream_sends_heartbeats(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = {**base_env(redis_server.url, tmp_path), "SSE_PING_S": "1"}
    async with serve(env) as running, open_stream(running, GLOBAL_STREAM) as reader:
        block = await asyncio.wait_for(reader.next_block(), READ_TIMEOUT_S)

    assert block.data_lines == []
    assert block.comments and block.comments[0].startswith("ping")


async def test_streams_beyond_limit_get_503(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = {**base_env(redis_server.url, tmp_path), "SSE_MAX_STREAMS": "1"}
    async with serve(env) as running:
        async with open_stream(running, GLOBAL_STREAM):
            rejected = await running.client.get(GLOBAL_STREAM)
        async with open_stream(running, GLOBAL_STREAM):
            # The slot of the closed stream is free again.
            pass

    assert rejected.status_code == 503
    assert rejected.headers["Retry-After"].isdigit()


async def test_stream_before_start_redis_down_is_503(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    async with serve(base_env(own_redis_server.url, tmp_path)) as running:
        own_redis_server.stop()
        global_response = await running.client.get(GLOBAL_STREAM)
        job_response = await running.client.get(f"{JOBS}/{new_id()}/stream")

    assert global_response.status_code == 503
    assert job_response.status_code == 503
    assert "Redis" in global_response.json()["error"]


async def test_stream_ends_with_error_when_redis_stops(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    async with serve(base_env(own_redis_server.url, tmp_path)) as running:
        async with open_stream(running, GLOBAL_STREAM) as reader:
            own_redis_server.stop()
            events = await asyncio.wait_for(reader.read_to_end(), READ_TIMEOUT_S)

    assert [event.event for event in events] == ["stream_error"]
    assert "Redis" in events[0].data["error"]
    assert events[0].retry is not None


async def test_resume_past_last_event_is_422(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})

    response = await running_app.client.get(
        f"{JOBS}/{job_id}/stream", headers={"Last-Event-ID": "0-50"}
    )

    assert response.status_code == 422
    assert response.json()["field"] == "Last-Event-ID"
