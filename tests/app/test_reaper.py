"""The reaper: jobs that no delivery will finish get failed or redelivered."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.reaper import Reaper
from jobstore.events import JobStatus
from jobstore.store import JobStore
from tests.app.conftest import base_env, serve
from tests.servers import RedisServer

HOUR_S = 3600


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, lease_ms=50)


async def expired_job(store: JobStore, attempts: int) -> str:
    """Create a job whose `attempts`-th delivery stopped renewing its lease."""
    job_id = new_id()
    await store.create(job_id, {})
    for _ in range(attempts):
        await asyncio.sleep(0.06)
        await store.start(job_id)
    await asyncio.sleep(0.06)
    return job_id


async def test_last_attempt_abandoned_is_failed(store: JobStore) -> None:
    job_id = await expired_job(store, attempts=3)
    reaper = Reaper(store, max_attempts=3, abandoned_after_s=HOUR_S)

    result = await reaper.sweep()

    assert result.failed == [job_id]
    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.FAILED
    assert view.error is not None
    assert view.error.startswith("abandoned: attempt 3 of 3 stopped renewing its lease")


async def test_earlier_attempt_is_redelivered_locally(store: JobStore) -> None:
    job_id = await expired_job(store, attempts=1)
    redelivered: list[str] = []

    async def redeliver(job: str) -> None:
        redelivered.append(job)

    result = await Reaper(
        store, max_attempts=3, abandoned_after_s=HOUR_S, redeliver=redeliver
    ).sweep()

    assert redelivered == [job_id]
    assert result.redelivered == [job_id]
    assert result.failed == []


async def test_earlier_attempt_waits_for_the_queue(store: JobStore) -> None:
    job_id = await expired_job(store, attempts=1)

    result = await Reaper(store, max_attempts=3, abandoned_after_s=HOUR_S).sweep()

    assert result.failed == []
    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.RUNNING


async def test_live_lease_is_left_alone(redis: Redis) -> None:
    store = JobStore(redis, lease_ms=30_000)
    job_id = new_id()
    await store.create(job_id, {})
    await store.start(job_id)

    result = await Reaper(store, max_attempts=1, abandoned_after_s=0).sweep()

    assert result.failed == []
    assert result.redelivered == []


async def test_idle_queued_job_is_failed(store: JobStore) -> None:
    idle = new_id()
    await store.create(idle, {})

    before_deadline = await Reaper(store, max_attempts=3, abandoned_after_s=HOUR_S).sweep()
    failed = await Reaper(store, max_attempts=3, abandoned_after_s=0).sweep()

    assert before_deadline.failed == []
    assert failed.failed == [idle]
    view = await store.get(idle)
    assert view is not None
    assert view.error is not None
    assert view.error.startswith("abandoned: queued with no delivery")


async def test_service_fails_abandoned_last_attempt(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = {**base_env(redis_server.url, tmp_path), "TASK_MAX_ATTEMPTS": "1", "LEASE_S": "5"}
    async with serve(env) as running:
        # A worker that starts the only attempt and then dies.
        job_id = new_id()
        store = JobStore(redis, lease_ms=5000)
        await store.create(job_id, {})
        await store.start(job_id)
        job = await running.wait_for_status(job_id, {"completed", "failed"}, timeout_s=30)

    assert job["status"] == "failed"
    assert job["error"].startswith("abandoned: attempt 1 of 1")


async def test_sweeps_go_on_after_a_redis_error(own_redis_server: RedisServer) -> None:
    redis = Redis.from_url(own_redis_server.url, decode_responses=True)
    store = JobStore(redis, lease_ms=50)
    job_id = await expired_job(store, attempts=1)
    reaper = Reaper(store, max_attempts=1, abandoned_after_s=HOUR_S)
    # Redis rejects every write while maxmemory is this low, so sweeps fail.
    await redis.config_set("maxmemory", "1")
    sweeps = asyncio.create_task(reaper.run(interval_s=0.05))
    try:
        await asyncio.sleep(0.3)
        assert (await store.get(job_id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
        await redis.config_set("maxmemory", "0")
        for _ in range(100):
            view = await store.get(job_id)
            if view is not None and view.status is JobStatus.FAILED:
                break
            await asyncio.sleep(0.05)
    finally:
        sweeps.cancel()
        await asyncio.gather(sweeps, return_exceptions=True)
        await redis.aclose()

    assert view is not None
    assert view.status is JobStatus.FAILED
