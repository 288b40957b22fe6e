"""The kaboom-ingest command line against a served app: output and exit codes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app import cli
from jobstore.store import JobStore
from tests.app.conftest import TOKEN, RunningApp, base_env, serve
from tests.servers import RedisServer, free_port


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, lease_ms=30_000)


async def run_cli(
    running: RunningApp, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """Run the CLI in a thread, so that the app keeps serving on this event loop."""
    code = await asyncio.to_thread(cli.main, ["--url", running.base_url, "--token", TOKEN, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_run_waits_and_exits_0_on_completed(
    running_app: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run_cli(running_app, capsys, "run", "--tickers", "7203.T", "7974.T")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("job ")
    assert lines[0].endswith(" queued")
    assert any("[" + "#" * 30 + "] 100%" in line for line in lines)
    assert "completed" in lines[-1]
    job_id = lines[0].split()[1]
    status = await running_app.client.get(f"/api/v1/ingest/jobs/{job_id}")
    assert status.json()["status"] == "completed"


async def test_run_exits_1_on_failed_job(
    redis_server: RedisServer,
    redis: Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    env = {**base_env(redis_server.url, tmp_path), "MARKET_DATA_DIR": str(tmp_path / "empty")}
    async with serve(env) as running:
        code, out, err = await run_cli(running, capsys, "run", "--tickers", "7203.T")

    assert code == 1, err
    assert "failed" in out.splitlines()[-1]
    assert "no data found for 7203.T" in out


async def test_show_prints_job_json(
    running_app: RunningApp, store: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    lease = await store.start(job_id)

    code, out, _ = await run_cli(running_app, capsys, "show", job_id)
    code_at, out_at, _ = await run_cli(running_app, capsys, "show", job_id, "--at", "0-1")

    assert code == 0
    assert json.loads(out)["status"] == "running"
    assert code_at == 0
    assert json.loads(out_at)["status"] == "queued"
    await store.complete(lease, {})


async def test_show_unknown_job_exits_3(
    running_app: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = new_id()
    code, out, err = await run_cli(running_app, capsys, "show", job_id)

    assert code == 3
    assert out == ""
    assert f"job {job_id} not found" in err


async def test_history_prints_timeline(
    running_app: RunningApp, store: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = new_id()
    await store.create(job_id, {"date": None, "tickers": ["7203.T"]})
    lease = await store.start(job_id, delivery={"X-CloudTasks-TaskRetryCount": "0"})
    await store.progress(lease, 100, "7203.T done")
    await store.fail(job_id, "InfluxDB rejected the write", lease=lease)

    code, out, _ = await run_cli(running_app, capsys, "history", job_id)
    code_json, out_json, _ = await run_cli(running_app, capsys, "history", job_id, "--json")

    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["0-1", "0-2", "0-3", "0-4"]
    assert [line.split()[2] for line in lines] == ["created", "started", "progress", "failed"]
    assert 'params {"date": null, "tickers": ["7203.T"]}' in lines[0]
    assert "task retry 0" in lines[1]
    assert "100% 7203.T done" in lines[2]
    assert "error: InfluxDB rejected the write" in lines[3]
    assert code_json == 0
    assert [json.loads(line)["version"] for line in out_json.splitlines()] == [1, 2, 3, 4]


async def test_follow_job_exit_code_follows_status(
    running_app: RunningApp, store: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    completed, failed = new_id(), new_id()
    for job_id in (completed, failed):
        await store.create(job_id, {})
    lease = await store.start(completed)
    follower = asyncio.create_task(run_cli(running_app, capsys, "follow", completed))
    await store.progress(lease, 50, "half")
    await store.complete(lease, {"bars_written": 2})
    code, out, _ = await asyncio.wait_for(follower, 30)

    lease = await store.start(failed)
    await store.fail(failed, "boom", lease=lease)
    failed_code, failed_out, _ = await run_cli(running_app, capsys, "follow", failed)

    assert code == 0
    assert [line.split()[2] for line in out.splitlines()] == [
        "created",
        "started",
        "progress",
        "completed",
    ]
    assert failed_code == 1
    assert failed_out.splitlines()[-1].split()[2] == "failed"


async def test_follow_all_jobs_with_count(
    running_app: RunningApp, store: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    follower = asyncio.create_task(run_cli(running_app, capsys, "follow", "--count", "4"))
    job_ids = [new_id() for _ in range(4)]
    # The stream starts at new events, so jobs are created until the
    # follower has printed four of them.
    for job_id in job_ids:
        await asyncio.sleep(0.2)
        await store.create(job_id, {})
    while not follower.done():
        extra = new_id()
        job_ids.append(extra)
        await store.create(extra, {})
        await asyncio.sleep(0.2)
    code, out, _ = await follower

    assert code == 0
    printed = [line.split()[0] for line in out.splitlines()]
    assert len(printed) == 4
    assert printed == job_ids[job_ids.index(printed[0]) :][:4]


async def test_rerun_exit_codes(
    running_app: RunningApp, store: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    running, finished = new_id(), new_id()
    await store.create(running, {})
    await store.start(running)
    await store.create(finished, {"date": None, "tickers": ["7203.T"]})
    lease = await store.start(finished)
    await store.fail(finished, "boom", lease=lease)

    refused, _, refused_err = await run_cli(running_app, capsys, "rerun", running)
    code, out, err = await run_cli(running_app, capsys, "rerun", finished, "--wait")

    assert refused == 3
    assert "409" in refused_err
    assert "still running" in refused_err
    assert code == 0, err
    assert f"(re-run of {finished})" in out.splitlines()[0]
    assert "completed" in out.splitlines()[-1]


async def test_list_filters_by_status(
    running_app: RunningApp, store: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = []
    for number in range(5):
        job_id = new_id()
        await store.create(job_id, {})
        if number % 2 == 0:
            lease = await store.start(job_id)
            await store.fail(job_id, "boom", lease=lease)
            failed.append(job_id)

    code, out, _ = await run_cli(running_app, capsys, "list", "--status", "failed", "--limit", "2")
    bad_code, _, bad_err = await run_cli(running_app, capsys, "list", "--since", "someday")

    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == failed[::-1][:2]
    assert all(line.split()[1] == "failed" for line in lines[:2])
    assert lines[2].startswith("more jobs: --cursor ")
    assert bad_code == 3
    assert "since" in bad_err


def test_missing_configuration_exits_2() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "list"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    no_token = subprocess.run(
        [sys.executable, "-m", "app.cli", "--url", "http://127.0.0.1:9", "list"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )

    assert result.returncode == 2
    assert "KABOOM_URL" in result.stderr
    assert no_token.returncode == 2
    assert "INGEST_API_TOKEN" in no_token.stderr


def test_unreachable_service_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    # free_port binds and releases a port, so nothing listens there.
    url = f"http://127.0.0.1:{free_port()}"
    code = cli.main(["--url", url, "--token", "x", "show", "some-job"])

    assert code == 3
    assert "failed" in capsys.readouterr().err
