"""The worker endpoint's delivery contract, with the real ingestion behind it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.dispatch.base import WORKER_PATH
from jobstore.events import EventType, JobStatus
from jobstore.store import JobStore
from tests.app.conftest import RunningApp, base_env, influx_env, serve
from tests.servers import RedisServer, VictoriaMetrics, free_port


@pytest.fixture
async def worker_app(
    redis_server: RedisServer, redis: Redis, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    env = {
        **base_env(redis_server.url, tmp_path),
        "INTERNAL_AUTH": "disabled",
        **influx_env(victoria_metrics.url),
        "TASK_MAX_ATTEMPTS": "3",
    }
    async with serve(env) as running:
        yield running


async def create_job(redis: Redis, params: dict[str, object]) -> str:
    job_id = str(uuid.uuid4())
    await JobStore(redis).create(job_id, params)
    return job_id


def delivery_headers(retry_count: int) -> dict[str, str]:
    return {
        "X-CloudTasks-QueueName": "ingest-jobs",
        "X-CloudTasks-TaskName": "test-task",
        "X-CloudTasks-TaskRetryCount": str(retry_count),
    }


async def test_worker_refuses_without_auth(running_app: RunningApp) -> None:
    response = await running_app.client.post(WORKER_PATH, json={"job_id": "x"})

    assert response.status_code == 401
    assert "INTERNAL_AUTH" in response.json()["error"]


async def test_concurrent_deliveries_run_once(worker_app: RunningApp, redis: Redis) -> None:
    job_id = await create_job(redis, {"date": None, "tickers": ["7203.T"]})

    responses = await asyncio.gather(
        *(
            worker_app.client.post(
                WORKER_PATH, json={"job_id": job_id}, headers=delivery_headers(0)
            )
            for _ in range(2)
        )
    )

    store = JobStore(redis)
    events = await store.events(job_id)
    started = [event for event in events if event.type is EventType.STARTED]
    completed = [event for event in events if event.type is EventType.COMPLETED]
    assert len(started) == 1
    assert len(completed) == 1
    codes = sorted(response.status_code for response in responses)
    assert codes in ([200, 200], [200, 503])
    outcomes = {response.json().get("outcome") for response in responses}
    assert "completed" in outcomes
    assert outcomes <= {"completed", "already_finished", None}


async def test_delivery_of_completed_job_does_nothing(worker_app: RunningApp, redis: Redis) -> None:
    job_id = await create_job(redis, {"date": None, "tickers": ["7203.T"]})
    first = await worker_app.client.post(WORKER_PATH, json={"job_id": job_id})
    assert first.json()["outcome"] == "completed"
    events_before = await JobStore(redis).events(job_id)

    again = await worker_app.client.post(WORKER_PATH, json={"job_id": job_id})

    assert again.status_code == 200
    assert again.json()["outcome"] == "already_finished"
    assert await JobStore(redis).events(job_id) == events_before


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"{not json", "rejected"),
        (b'["job"]', "rejected"),
        (b'{"job_id": 42}', "rejected"),
        (b'{"job_id": "no-such-job"}', "unknown_job"),
    ],
)
async def test_payload_that_cannot_succeed_is_2xx(
    worker_app: RunningApp, body: bytes, outcome: str
) -> None:
    response = await worker_app.client.post(WORKER_PATH, content=body)

    assert response.status_code == 200
    assert response.json()["outcome"] == outcome
    assert response.json()["detail"]


async def test_delivery_while_leased_is_503(worker_app: RunningApp, redis: Redis) -> None:
    job_id = await create_job(redis, {"date": None, "tickers": ["7203.T"]})
    await JobStore(redis, lease_ms=30_000).start(job_id)

    response = await worker_app.client.post(WORKER_PATH, json={"job_id": job_id})

    assert response.status_code == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 30


async def test_transient_failure_retries_then_fails(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    closed_port = free_port()
    env = {
        **base_env(redis_server.url, tmp_path),
        "INTERNAL_AUTH": "disabled",
        **influx_env(f"http://127.0.0.1:{closed_port}"),
        "TASK_MAX_ATTEMPTS": "2",
    }
    async with serve(env) as running:
        # Created after startup, so the local dispatcher's recovery does not deliver it.
        job_id = await create_job(redis, {"date": None, "tickers": ["7203.T"]})
        first = await running.client.post(
            WORKER_PATH, json={"job_id": job_id}, headers=delivery_headers(0)
        )
        after_first = (await running.client.get(f"/api/v1/ingest/jobs/{job_id}")).json()
        last = await running.client.post(
            WORKER_PATH, json={"job_id": job_id}, headers=delivery_headers(1)
        )
        after_last = (await running.client.get(f"/api/v1/ingest/jobs/{job_id}")).json()

    assert first.status_code == 503
    assert first.headers["Retry-After"].isdigit()
    assert after_first["status"] == JobStatus.QUEUED.value
    assert last.status_code == 200
    assert last.json()["outcome"] == "failed"
    assert after_last["status"] == JobStatus.FAILED.value
    assert "last of 2 attempts" in after_last["error"]
    events = await JobStore(redis).events(job_id)
    types = [event.type for event in events]
    assert types == [
        EventType.CREATED,
        EventType.STARTED,
        EventType.ATTEMPT_FAILED,
        EventType.STARTED,
        EventType.FAILED,
    ]
    assert events[1].delivery == delivery_headers(0)
    assert events[3].delivery == delivery_headers(1)


async def test_local_dispatch_needs_no_internal_auth(running_app: RunningApp) -> None:
    response = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["7203.T"]}
    )
    job = await running_app.wait_for_status(response.json()["job_id"], {"completed", "failed"})

    assert job["status"] == "completed"


async def test_local_mode_redelivers_unfinished_jobs(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    store = JobStore(redis, lease_ms=50)
    never_dispatched = await create_job(redis, {"date": None, "tickers": ["7203.T"]})
    abandoned = await create_job(redis, {"date": None, "tickers": ["9984.T"]})
    await store.start(abandoned)
    await asyncio.sleep(0.1)

    async with serve(base_env(redis_server.url, tmp_path)) as running:
        first = await running.wait_for_status(never_dispatched, {"completed", "failed"})
        second = await running.wait_for_status(abandoned, {"completed", "failed"})

    assert first["status"] == "completed"
    assert second["status"] == "completed"
    assert second["attempts"] == 2


async def test_local_mode_fails_job_out_of_attempts(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    store = JobStore(redis, lease_ms=50)
    crashed = await create_job(redis, {"date": None, "tickers": ["7203.T"]})
    await store.start(crashed)
    await asyncio.sleep(0.1)

    env = {**base_env(redis_server.url, tmp_path), "TASK_MAX_ATTEMPTS": "1"}
    async with serve(env) as running:
        job = await running.wait_for_status(crashed, {"completed", "failed"})

    assert job["status"] == "failed"
    assert job["error"].startswith("abandoned: attempt 1 of 1")


async def test_job_with_no_ticker_found_fails(running_app: RunningApp) -> None:
    response = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["AAPL", "1301.T"]}
    )
    job = await running_app.wait_for_status(response.json()["job_id"], {"completed", "failed"})

    assert job["status"] == "failed"
    assert job["error"] == "no ticker was ingested: no data found for AAPL, 1301.T"


async def test_job_with_some_tickers_found_completes(running_app: RunningApp) -> None:
    response = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["AAPL", "7203.T"]}
    )
    job = await running_app.wait_for_status(response.json()["job_id"], {"completed", "failed"})

    assert job["status"] == "completed"
    assert job["result"]["tickers_done"] == ["7203.T"]
    assert job["result"]["tickers_not_found"] == ["AAPL"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"job_id": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"job_id": ' + b"9" * 5000 + b"}",
        b'{"job_id": "x", "pad": "' + b"x" * 200_000 + b'"}',
    ],
)
async def test_hostile_payload_is_rejected_with_2xx(worker_app: RunningApp, body: bytes) -> None:
    response = await worker_app.client.post(WORKER_PATH, content=body)

    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"


async def test_odd_retry_header_counts_from_store(worker_app: RunningApp, redis: Redis) -> None:
    job_id = await create_job(redis, {"date": None, "tickers": ["7203.T"]})

    response = await worker_app.client.post(
        WORKER_PATH, json={"job_id": job_id}, headers={"X-CloudTasks-TaskRetryCount": b"\xb2"}
    )

    assert response.status_code == 200
    assert response.json()["outcome"] == "completed"
