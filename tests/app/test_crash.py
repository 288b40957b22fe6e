"""A worker process killed mid-job: the next delivery after the lease takes the job over."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from redis.asyncio import Redis

from app.dispatch.base import WORKER_PATH
from ingestion.config import default_market_data_dir
from jobstore.events import EventType, JobStatus
from jobstore.store import JobStore
from tests.app.conftest import TOKEN
from tests.servers import RedisServer, free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 5


def make_market_data(directory: Path, copies: int) -> list[str]:
    """Write `copies` yfinance files, each the 7203.T sample under another code."""
    template = (default_market_data_dir() / "7203.T.csv").read_text()
    tickers = [f"{1300 + number}.T" for number in range(copies)]
    directory.mkdir()
    for ticker in tickers:
        (directory / f"{ticker}.csv").write_text(template.replace("7203.T", ticker))
    return tickers


@contextmanager
def worker_process(
    env: dict[str, str], log_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run the service in its own uvicorn process; yield its base URL and the process.

    The process's JSON log lines go to `log_path`, which a failing test prints.
    """
    port = free_port()
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process, "uvicorn")
        yield f"http://127.0.0.1:{port}", process
    except Exception as exc:
        raise AssertionError(f"worker log:\n{log_path.read_text()[-4000:]}") from exc
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()


async def test_killed_worker_is_taken_over(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    tickers = make_market_data(tmp_path / "market", copies=12)
    env = {
        "INGEST_API_TOKEN": TOKEN,
        "REDIS_URL": redis_server.url,
        "KABOOM_STATE_DIR": str(tmp_path / "state"),
        "MARKET_DATA_DIR": str(tmp_path / "market"),
        "INTERNAL_AUTH": "disabled",
        "LEASE_S": str(LEASE_S),
    }
    store = JobStore(redis)
    job_id = str(uuid.uuid4())
    await store.create(job_id, {"date": None, "tickers": None})
    delivery = {"job_id": job_id}

    with worker_process(env, tmp_path / "first.log") as (first_url, first_process):
        first = asyncio.create_task(_post(first_url, delivery, retry_count=0))
        await _wait_for_progress(store, job_id)
        first_process.send_signal(signal.SIGKILL)
        await asyncio.gather(first, return_exceptions=True)

    with worker_process(env, tmp_path / "second.log") as (second_url, _):
        while True:
            response = await _post(second_url, delivery, retry_count=1)
            if response.status_code != 503:
                break
            assert 1 <= int(response.headers["Retry-After"]) <= LEASE_S
            await asyncio.sleep(0.5)

    assert response.status_code == 200
    assert response.json()["outcome"] == "completed"
    view = await store.get(job_id)
    assert view is not None
    assert view.status is JobStatus.COMPLETED
    assert view.attempts == 2
    assert view.result is not None
    assert sorted(view.result["tickers_done"]) == tickers
    events = await store.events(job_id)
    started = [event for event in events if event.type is EventType.STARTED]
    assert [event.attempt for event in started] == [1, 2]
    abandoned = events[events.index(started[0]) + 1 : events.index(started[1])]
    assert abandoned, "the killed attempt recorded no progress"
    assert all(event.type is EventType.PROGRESS for event in abandoned)
    assert [event.type for event in events].count(EventType.COMPLETED) == 1


async def _post(base_url: str, body: dict[str, str], retry_count: int) -> httpx.Response:
    headers = {"X-CloudTasks-TaskRetryCount": str(retry_count)}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await client.post(WORKER_PATH, json=body, headers=headers)


async def _wait_for_progress(store: JobStore, job_id: str) -> None:
    for _ in range(600):
        view = await store.get(job_id)
        if view is not None and view.status is JobStatus.RUNNING and view.progress > 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reported progress")
