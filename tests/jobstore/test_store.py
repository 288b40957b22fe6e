from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from jobstore import keys
from jobstore.errors import (
    IdempotencyConflict,
    JobFinished,
    JobNotFound,
    JobStoreUnavailable,
    LeaseHeld,
    LeaseLost,
)
from jobstore.events import EventType, JobStatus
from jobstore.projection import fold
from jobstore.store import JobStore
from tests.servers import RedisServer


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, lease_ms=30_000)


async def test_create_writes_queued_job(store: JobStore) -> None:
    job_id = new_id()
    view, created = await store.create(job_id, {"date": "2024-12-24", "tickers": None})

    assert created
    assert view.status is JobStatus.QUEUED
    assert view.progress == 0
    events = await store.events(job_id)
    assert [event.type for event in events] == [EventType.CREATED]
    assert events[0].id == "0-1"
    assert events[0].data["params"] == {"date": "2024-12-24", "tickers": None}


async def test_create_twice_returns_existing_job(store: JobStore) -> None:
    job_id = new_id()
    first, _ = await store.create(job_id, {}, fingerprint="abc")
    second, created = await store.create(job_id, {}, fingerprint="abc")

    assert not created
    assert second == first
    assert len(await store.events(job_id)) == 1


async def test_create_with_other_fingerprint_conflicts(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {}, fingerprint="abc")

    with pytest.raises(IdempotencyConflict):
        await store.create(job_id, {}, fingerprint="other")


async def test_get_unknown_job_is_none(store: JobStore) -> None:
    assert await store.get(new_id()) is None


async def test_start_unknown_job_raises(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        await store.start(new_id())


async def test_full_lifecycle_snapshot_matches_fold(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id, delivery={"X-CloudTasks-TaskRetryCount": "0"})
    await store.progress(lease, 50, "7203.T done")
    await store.complete(lease, {"bars_written": 10})

    view = await store.get(job_id)
    events = await store.events(job_id)
    assert view == fold(job_id, events)
    assert view is not None
    assert view.status is JobStatus.COMPLETED
    assert view.progress == 100
    assert view.result == {"bars_written": 10}
    assert view.attempts == 1
    assert [event.id for event in events] == ["0-1", "0-2", "0-3", "0-4"]
    assert events[1].delivery == {"X-CloudTasks-TaskRetryCount": "0"}


async def test_start_while_leased_raises_lease_held(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await store.start(job_id)

    with pytest.raises(LeaseHeld) as caught:
        await store.start(job_id)
    assert 0 < caught.value.lease_left_ms <= 30_000


async def test_start_after_finish_raises(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.complete(lease, {})

    with pytest.raises(JobFinished) as caught:
        await store.start(job_id)
    assert caught.value.status is JobStatus.COMPLETED


async def test_complete_only_once(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.complete(lease, {"n": 1})

    with pytest.raises(LeaseLost):
        await store.complete(lease, {"n": 2})
    view = await store.get(job_id)
    assert view is not None
    assert view.result == {"n": 1}


async def test_expired_lease_is_taken_over(redis: Redis) -> None:
    store = JobStore(redis, lease_ms=50)
    job_id = new_id()
    await store.create(job_id, {})
    abandoned = await store.start(job_id)
    await asyncio.sleep(0.1)

    second = await store.start(job_id)
    assert second.attempt == 2
    with pytest.raises(LeaseLost):
        await store.complete(abandoned, {})
    with pytest.raises(LeaseLost):
        await store.renew(abandoned)
    await store.complete(second, {"ok": True})

    types = [event.type for event in await store.events(job_id)]
    assert types == [EventType.CREATED, EventType.STARTED, EventType.STARTED, EventType.COMPLETED]


async def test_renew_keeps_lease_alive(redis: Redis) -> None:
    store = JobStore(redis, lease_ms=200)
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    for _ in range(4):
        await asyncio.sleep(0.1)
        await store.renew(lease)

    with pytest.raises(LeaseHeld):
        await store.start(job_id)


async def test_holder_of_expired_lease_may_finish(redis: Redis) -> None:
    store = JobStore(redis, lease_ms=50)
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await asyncio.sleep(0.1)

    await store.complete(lease, {})
    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.COMPLETED


async def test_attempt_failed_returns_job_to_queued(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    await store.fail_attempt(lease, "influx down")

    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.QUEUED
    assert "influx down" in view.message
    assert view.error is None
    retry = await store.start(job_id)
    assert retry.attempt == 2


async def test_fail_without_lease_rejected_while_running(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await store.start(job_id)

    with pytest.raises(LeaseHeld):
        await store.fail(job_id, "bad payload")


async def test_fail_queued_job(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await store.fail(job_id, "enqueue failed: UNAVAILABLE")

    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.FAILED
    assert view.error == "enqueue failed: UNAVAILABLE"
    assert view.finished_at is not None


async def test_concurrent_starts_have_one_winner(redis: Redis) -> None:
    job_id = new_id()
    await JobStore(redis).create(job_id, {})
    stores = [JobStore(redis) for _ in range(20)]

    results = await asyncio.gather(
        *(store.start(job_id) for store in stores), return_exceptions=True
    )
    winners = [result for result in results if not isinstance(result, Exception)]
    losers = [result for result in results if isinstance(result, Exception)]
    assert len(winners) == 1
    assert all(isinstance(loser, LeaseHeld) for loser in losers)
    started = [e for e in await stores[0].events(job_id) if e.type is EventType.STARTED]
    assert len(started) == 1


async def test_append_sent_twice_is_stored_once(store: JobStore, redis: Redis) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    state = await redis.hgetall(keys.state_key(job_id))
    script_args = [
        state["version"],
        state["last_event_key"],
        "progress",
        "",
        0,
        state["view"],
        "queued",
        "type",
        "progress",
    ]

    reply = await store._append_script(
        keys=[keys.events_key(job_id), keys.state_key(job_id)], args=script_args
    )
    assert reply[0] == "duplicate"
    assert len(await store.events(job_id)) == 1


async def test_events_paged_after_cursor(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)
    for percent in (10, 20, 30):
        await store.progress(lease, percent, f"{percent}%")

    page = await store.events(job_id, after="0-2", limit=2)
    assert [event.id for event in page] == ["0-3", "0-4"]
    assert [event.data["percent"] for event in page] == [10, 20]


async def test_job_survives_redis_restart(own_redis_server: RedisServer) -> None:
    client = Redis.from_url(own_redis_server.url, decode_responses=True)
    store = JobStore(client)
    job_id = new_id()
    await store.create(job_id, {"date": None})
    lease = await store.start(job_id)

    own_redis_server.stop()
    with pytest.raises(JobStoreUnavailable):
        await store.progress(lease, 10, "during outage")
    own_redis_server.start()

    await store.progress(lease, 20, "after restart")
    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.RUNNING
    assert view.progress == 20
    await client.aclose()
