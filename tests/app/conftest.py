from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from tests.servers import RedisServer, free_port

TOKEN = "test-token-1f2e3d"


@dataclass
class RunningApp:
    app: Starlette
    base_url: str
    client: httpx.AsyncClient

    async def wait_for_status(
        self, job_id: str, statuses: set[str], timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Poll the status endpoint, as n8n does, until the job reaches one of `statuses`."""
        doc: dict[str, Any] = {}
        for _ in range(int(timeout_s / 0.05)):
            response = await self.client.get(f"/api/v1/ingest/jobs/{job_id}")
            doc = response.json()
            if doc.get("status") in statuses:
                return doc
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} never reached {statuses}; last seen {doc}")


AppFactory = Callable[..., Any]


def base_env(redis_url: str, state_dir: Path) -> dict[str, str]:
    return {
        "INGEST_API_TOKEN": TOKEN,
        "REDIS_URL": redis_url,
        "KABOOM_STATE_DIR": str(state_dir),
        "LEASE_S": "5",
    }


def influx_env(url: str) -> dict[str, str]:
    """Settings that point the points writer at an InfluxDB write API at `url`."""
    return {
        "INFLUX_URL": url,
        "INFLUX_TOKEN": "unused",
        "INFLUX_ORG": "kaboom",
        "INFLUX_BUCKET": "prices",
    }


@asynccontextmanager
async def serve(env: Mapping[str, str], port: int | None = None) -> AsyncIterator[RunningApp]:
    """Serve the app with uvicorn on a loopback port, with the given environment."""
    app = create_app(Settings.from_env(env))
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            # A connection left open by a failed test must not stall the shutdown.
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base_url, headers={"X-Ingest-Token": TOKEN}, timeout=60
    ) as client:
        try:
            yield RunningApp(app, base_url, client)
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def running_app(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    """The app on the session's Redis, which the `redis` fixture has just emptied."""
    async with serve(base_env(redis_server.url, tmp_path)) as running:
        yield running
