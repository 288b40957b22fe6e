"""The production path end to end: the real Cloud Tasks client, a local gRPC
Cloud Tasks server, HTTP push with a signed OIDC token, and the worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from app.dispatch.base import WORKER_PATH
from app.dispatch.cloud_tasks import task_id_for_job
from jobstore.events import EventType, JobStatus
from jobstore.store import JobStore
from localtasks import LocalCloudTasks, QueueSettings
from tests.app.conftest import base_env, influx_env, serve
from tests.servers import RedisServer, free_port

PROJECT = "kaboom-test"
SERVICE_ACCOUNT = "ingest-tasks@kaboom-test.iam.gserviceaccount.com"
DEADLINE_S = 120


@pytest.fixture
async def local_tasks() -> AsyncIterator[LocalCloudTasks]:
    server = LocalCloudTasks(QueueSettings(max_attempts=3, min_backoff_s=0.05, max_backoff_s=0.2))
    await server.start()
    yield server
    await server.stop()


def cloud_tasks_env(
    redis_url: str, state_dir: Path, local_tasks: LocalCloudTasks, port: int
) -> dict[str, str]:
    return {
        **base_env(redis_url, state_dir),
        "USE_CLOUD_TASKS": "true",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "CLOUD_TASKS_EMULATOR_HOST": local_tasks.grpc_address,
        "WORKER_BASE_URL": f"http://127.0.0.1:{port}",
        "TASKS_SERVICE_ACCOUNT": SERVICE_ACCOUNT,
        "OIDC_JWKS_URL": local_tasks.jwks_url,
        "TASK_DEADLINE_S": str(DEADLINE_S),
        "TASK_MAX_ATTEMPTS": "3",
        "RETRY_AFTER_S": "1",
    }


async def test_job_completes_through_cloud_tasks(
    redis_server: RedisServer, redis: Redis, local_tasks: LocalCloudTasks, tmp_path: Path
) -> None:
    port = free_port()
    env = cloud_tasks_env(redis_server.url, tmp_path, local_tasks, port)
    async with serve(env, port) as running:
        response = await running.client.post(
            "/api/v1/ingest/run-daily", json={"date": "2024-12-24", "tickers": ["7203.T"]}
        )
        job_id = response.json()["job_id"]
        job = await running.wait_for_status(job_id, {"completed", "failed"})

    assert job["status"] == "completed", job["error"]
    task_name = (
        f"projects/{PROJECT}/locations/asia-northeast1/queues/ingest-jobs/tasks/"
        f"{task_id_for_job(job_id)}"
    )
    assert list(local_tasks.tasks) == [task_name]
    task = local_tasks.tasks[task_name].task
    request = task.http_request
    assert request.url == f"http://127.0.0.1:{port}{WORKER_PATH}"
    assert json.loads(request.body) == {
        "job_id": job_id,
        "date": "2024-12-24",
        "tickers": ["7203.T"],
    }
    assert request.oidc_token.audience == f"http://127.0.0.1:{port}"
    assert request.oidc_token.service_account_email == SERVICE_ACCOUNT
    assert task.dispatch_deadline.total_seconds() == DEADLINE_S

    started = [e for e in await JobStore(redis).events(job_id) if e.type is EventType.STARTED]
    assert len(started) == 1
    assert started[0].delivery is not None
    assert started[0].delivery["X-CloudTasks-TaskName"] == task_id_for_job(job_id)
    assert started[0].delivery["X-CloudTasks-TaskRetryCount"] == "0"
    assert started[0].delivery["X-CloudTasks-QueueName"] == "ingest-jobs"


async def test_fifty_concurrent_deliveries_run_once(
    redis_server: RedisServer, redis: Redis, local_tasks: LocalCloudTasks, tmp_path: Path
) -> None:
    port = free_port()
    env = cloud_tasks_env(redis_server.url, tmp_path, local_tasks, port)
    job_id = str(uuid.uuid4())
    await JobStore(redis).create(job_id, {"date": None, "tickers": ["7203.T"]})
    token = local_tasks.signer.sign_id_token(f"http://127.0.0.1:{port}", SERVICE_ACCOUNT)
    headers = {
        "Authorization": f"Bearer {token}",
        "X-CloudTasks-TaskName": task_id_for_job(job_id),
        "X-CloudTasks-TaskRetryCount": "0",
    }

    async with serve(env, port) as running:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=120) as client:
            responses = await asyncio.gather(
                *(
                    client.post(WORKER_PATH, json={"job_id": job_id}, headers=headers)
                    for _ in range(50)
                )
            )

    codes = [response.status_code for response in responses]
    assert set(codes) <= {200, 503}, codes
    outcomes = [r.json().get("outcome") for r in responses if r.status_code == 200]
    assert outcomes.count("completed") == 1
    assert all(r.headers["Retry-After"].isdigit() for r in responses if r.status_code == 503)
    events = await JobStore(redis).events(job_id)
    assert [e.type for e in events].count(EventType.STARTED) == 1
    assert [e.type for e in events].count(EventType.COMPLETED) == 1


async def test_last_attempt_failure_ends_failed(
    redis_server: RedisServer, redis: Redis, local_tasks: LocalCloudTasks, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **cloud_tasks_env(redis_server.url, tmp_path, local_tasks, port),
        **influx_env(f"http://127.0.0.1:{free_port()}"),
    }
    async with serve(env, port) as running:
        response = await running.client.post(
            "/api/v1/ingest/run-daily", json={"tickers": ["7203.T"]}
        )
        job_id = response.json()["job_id"]
        job = await running.wait_for_status(job_id, {"completed", "failed"})
        task = await local_tasks.wait_for_task(next(iter(local_tasks.tasks)), timeout_s=60)

    assert job["status"] == JobStatus.FAILED.value
    assert "last of 3 attempts" in job["error"]
    codes = [attempt.status_code for attempt in task.attempts]
    assert codes == [503, 503, 200]
    events = await JobStore(redis).events(job_id)
    assert [e.type for e in events] == [
        EventType.CREATED,
        EventType.STARTED,
        EventType.ATTEMPT_FAILED,
        EventType.STARTED,
        EventType.ATTEMPT_FAILED,
        EventType.STARTED,
        EventType.FAILED,
    ]
    retry_counts = [e.delivery["X-CloudTasks-TaskRetryCount"] for e in events if e.delivery]
    assert retry_counts == ["0", "0", "1", "1", "2", "2"]


@pytest.mark.parametrize(
    ("audience_suffix", "email", "expected"),
    [
        ("", SERVICE_ACCOUNT, 200),
        ("/other", SERVICE_ACCOUNT, 401),
        ("", "someone@kaboom-test.iam.gserviceaccount.com", 403),
        (None, SERVICE_ACCOUNT, 401),
    ],
)
async def test_worker_checks_oidc_token(
    redis_server: RedisServer,
    redis: Redis,
    local_tasks: LocalCloudTasks,
    tmp_path: Path,
    audience_suffix: str | None,
    email: str,
    expected: int,
) -> None:
    port = free_port()
    env = cloud_tasks_env(redis_server.url, tmp_path, local_tasks, port)
    headers = {}
    if audience_suffix is not None:
        audience = f"http://127.0.0.1:{port}{audience_suffix}"
        headers["Authorization"] = f"Bearer {local_tasks.signer.sign_id_token(audience, email)}"

    async with serve(env, port) as running:
        response = await running.client.post(
            WORKER_PATH, json={"job_id": "no-such-job"}, headers=headers
        )

    assert response.status_code == expected
    if expected != 200:
        assert response.json()["error"]
        assert "Bearer" not in response.text
