"""The public API as n8n uses it: token, run-daily, status polling."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.app.conftest import RunningApp, base_env, serve
from tests.servers import RedisServer

# The job JSON that n8n polls. Renaming or removing a field breaks running
# workflows; adding one means adding it here and to docs/job-api.md.
JOB_FIELDS = {
    "job_id": str,
    "status": str,
    "progress": int,
    "message": str,
    "result": (dict, type(None)),
    "error": (str, type(None)),
    "created_at": str,
    "updated_at": str,
    "started_at": (str, type(None)),
    "finished_at": (str, type(None)),
    "attempts": int,
}
ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


def assert_job_contract(doc: dict[str, object]) -> None:
    assert set(doc) == set(JOB_FIELDS)
    for name, expected_type in JOB_FIELDS.items():
        assert isinstance(doc[name], expected_type), f"{name}={doc[name]!r}"
    assert doc["status"] in {"queued", "running", "completed", "failed"}
    assert 0 <= doc["progress"] <= 100  # type: ignore[operator]


async def test_job_json_contract_through_lifecycle(running_app: RunningApp) -> None:
    response = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["7203.T"]}
    )

    assert response.status_code == 202
    accepted = response.json()
    assert_job_contract(accepted)
    assert accepted["status"] == "queued"
    final = await running_app.wait_for_status(accepted["job_id"], {"completed", "failed"})
    assert_job_contract(final)
    assert final["status"] == "completed"
    assert final["created_at"] == accepted["created_at"]
    for name in ("created_at", "updated_at", "started_at", "finished_at"):
        assert re.match(ISO_UTC, final[name]), f"{name}={final[name]!r}"


async def test_run_daily_without_body(running_app: RunningApp) -> None:
    response = await running_app.client.post("/api/v1/ingest/run-daily")

    assert response.status_code == 202
    assert response.json()["status"] == "queued"


async def test_unknown_job_is_404(running_app: RunningApp) -> None:
    job_id = str(uuid.uuid4())
    response = await running_app.client.get(f"/api/v1/ingest/jobs/{job_id}")

    assert response.status_code == 404
    assert response.json()["error"] == f"job {job_id} not found"


@pytest.mark.parametrize("headers", [{}, {"X-Ingest-Token": "wrong"}, {"X-Ingest-Token": ""}])
async def test_missing_or_wrong_token_is_401(
    running_app: RunningApp, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=running_app.base_url, headers=headers) as client:
        post = await client.post("/api/v1/ingest/run-daily")
        get = await client.get(f"/api/v1/ingest/jobs/{uuid.uuid4()}")

    assert post.status_code == 401
    assert get.status_code == 401
    assert "X-Ingest-Token" in post.json()["error"]
    assert "X-Ingest-Token" in get.json()["error"]


@pytest.mark.parametrize(
    ("body", "status_code", "field"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"date": "2024-13-01"}', 422, "date"),
        (b'{"date": "24-12-01"}', 422, "date"),
        (b'{"date": 20241201}', 422, "date"),
        (b'{"tickers": "7203.T"}', 422, "tickers"),
        (b'{"tickers": []}', 422, "tickers"),
        (b'{"tickers": ["7203.T", "bad ticker"]}', 422, "tickers"),
        (b'{"tickers": [7203]}', 422, "tickers"),
        (b'{"tickers": ["7203.T", "NOPE.T"]}', 422, "tickers"),
        (b'{"tickers": ["AAPL.US.X"]}', 422, "tickers"),
    ],
)
async def test_invalid_body_names_the_field(
    running_app: RunningApp, body: bytes, status_code: int, field: str | None
) -> None:
    response = await running_app.client.post("/api/v1/ingest/run-daily", content=body)

    assert response.status_code == status_code
    doc = response.json()
    assert doc.get("field") == field
    assert doc["error"]


async def test_idempotency_key_returns_same_job(running_app: RunningApp) -> None:
    headers = {"Idempotency-Key": "n8n-run-2024-12-24"}
    body = {"date": "2024-12-24", "tickers": ["7203.T"]}
    first = await running_app.client.post("/api/v1/ingest/run-daily", json=body, headers=headers)
    second = await running_app.client.post("/api/v1/ingest/run-daily", json=body, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["job_id"] == first.json()["job_id"]
    other = await running_app.client.post("/api/v1/ingest/run-daily", json=body)
    assert other.json()["job_id"] != first.json()["job_id"]


async def test_idempotency_key_with_other_body_is_422(running_app: RunningApp) -> None:
    headers = {"Idempotency-Key": "reused-key"}
    await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"date": "2024-12-24"}, headers=headers
    )
    response = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"date": "2024-12-23"}, headers=headers
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["error"]


async def test_redis_down_is_503_json(own_redis_server: RedisServer, tmp_path: Path) -> None:
    async with serve(base_env(own_redis_server.url, tmp_path)) as running:
        own_redis_server.stop()
        get = await running.client.get(f"/api/v1/ingest/jobs/{uuid.uuid4()}")
        post = await running.client.post("/api/v1/ingest/run-daily")

    assert get.status_code == 503
    assert post.status_code == 503
    assert get.headers["content-type"] == "application/json"
    assert "Redis" in get.json()["error"]
    assert "Redis" in post.json()["error"]
    assert get.headers["Retry-After"].isdigit()


async def test_job_survives_redis_restart(own_redis_server: RedisServer, tmp_path: Path) -> None:
    async with serve(base_env(own_redis_server.url, tmp_path)) as running:
        accepted = (await running.client.post("/api/v1/ingest/run-daily")).json()
        await running.wait_for_status(accepted["job_id"], {"completed"})
        own_redis_server.stop()
        own_redis_server.start()
        response = await running.client.get(f"/api/v1/ingest/jobs/{accepted['job_id']}")

    assert response.status_code == 200
    assert response.json()["status"] == "completed"


async def test_ticker_spellings_share_one_job(running_app: RunningApp) -> None:
    headers = {"Idempotency-Key": "spelling-test"}
    first = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["7203.T", "brk-b"]}, headers=headers
    )
    second = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["7203", "BRK.B"]}, headers=headers
    )

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["job_id"] == first.json()["job_id"]


async def test_unknown_path_and_method_are_json(running_app: RunningApp) -> None:
    missing = await running_app.client.get("/api/v1/nope")
    wrong_method = await running_app.client.get("/api/v1/ingest/run-daily")

    assert missing.status_code == 404
    assert missing.json()["error"] == "no endpoint at /api/v1/nope"
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.json()["error"]


async def test_healthz_reports_redis(own_redis_server: RedisServer, tmp_path: Path) -> None:
    async with serve(base_env(own_redis_server.url, tmp_path)) as running:
        healthy = await running.client.get("/healthz")
        own_redis_server.stop()
        unhealthy = await running.client.get("/healthz")

    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok", "redis": "ok"}
    assert unhealthy.status_code == 503
    assert "Redis" in unhealthy.json()["error"]


@pytest.mark.parametrize(
    ("body", "status_code"),
    [
        (b"[" * 200_000 + b"]" * 200_000, 413),
        (b'{"date": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400),
        (b'{"date": ' + b"9" * 5000 + b"}", 400),
        (b'{"tickers": ["7203.T"], "pad": "' + b"x" * 70_000 + b'"}', 413),
    ],
)
async def test_hostile_body_is_4xx(running_app: RunningApp, body: bytes, status_code: int) -> None:
    response = await running_app.client.post("/api/v1/ingest/run-daily", content=body)

    assert response.status_code == status_code
    assert response.json()["error"]


@pytest.mark.parametrize("value", ["1969-12-31", "2999-01-01", "\u0662\u0660\u0662\u0664-01-01"])
async def test_date_out_of_range_is_422(running_app: RunningApp, value: str) -> None:
    response = await running_app.client.post("/api/v1/ingest/run-daily", json={"date": value})

    assert response.status_code == 422
    assert response.json()["field"] == "date"


async def test_legacy_key_of_other_type_is_404(running_app: RunningApp, redis: Redis) -> None:
    await redis.set("job:not-a-hash", "celery result")

    response = await running_app.client.get("/api/v1/ingest/jobs/not-a-hash")

    assert response.status_code == 404
