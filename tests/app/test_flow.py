"""The whole flow through HTTP: run-daily, local dispatch, worker, Redis, victoria-metrics."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

from redis.asyncio import Redis

from ingestion.config import default_market_data_dir
from jobstore import keys
from jobstore.events import EventType
from jobstore.store import JobStore
from tests.app.conftest import base_env, influx_env, serve
from tests.ingestion.helpers import TOKYO, day_of, read_yfinance_rows, utc_day_of
from tests.servers import RedisServer, VictoriaMetrics

PRICE_FIELDS = ("open", "high", "low", "close")


async def test_run_daily_writes_csv_values(
    redis_server: RedisServer, redis: Redis, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    env = {
        **base_env(redis_server.url, tmp_path),
        **influx_env(victoria_metrics.url),
    }
    async with serve(env) as running:
        response = await running.client.post(
            "/api/v1/ingest/run-daily", json={"tickers": ["7203.T", "8306.T"]}
        )
        job = await running.wait_for_status(response.json()["job_id"], {"completed", "failed"})

    assert job["status"] == "completed", job["error"]
    series = victoria_metrics.export("daily_bars")
    for ticker in ("7203.T", "8306.T"):
        _, rows = read_yfinance_rows(default_market_data_dir() / f"{ticker}.csv")
        written = [row for row in rows if row.volume > 0 and row.is_inside_range]
        closes = series[(ticker, "close")]
        volumes = series[(ticker, "volume")]

        assert len(closes) == len(written), ticker
        by_day = {day_of(timestamp_ms, TOKYO): timestamp_ms for timestamp_ms in closes}
        assert set(by_day) == {row.day for row in written}, ticker
        for row in written:
            timestamp_ms = by_day[row.day]
            assert utc_day_of(timestamp_ms) == row.day, f"{ticker} {row.day} shifted in UTC"
            assert volumes[timestamp_ms] == row.volume, f"{ticker} {row.day} volume"
            for field in PRICE_FIELDS:
                stored = series[(ticker, field)][timestamp_ms]
                assert math.isclose(stored, row.values[field], rel_tol=1e-11), (
                    f"{ticker} {row.day} {field}: {stored} != {row.values[field]}"
                )

    result = job["result"]
    assert result["bars_written"] == sum(len(series[(t, "close")]) for t in ("7203.T", "8306.T"))
    assert result["rejected_by_reason"] == {
        "zero_volume_flat_on_holiday": 44,
        "zero_volume_flat_on_trading_day": 4,
        "close_outside_range": 1,
    }
    events = await JobStore(redis).events(job["job_id"])
    progress = [event for event in events if event.type is EventType.PROGRESS]
    assert len(progress) == 2
    assert [event.data["percent"] for event in progress] == [50, 100]


async def test_watermark_outlives_the_container(
    redis_server: RedisServer, redis: Redis, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    influx = influx_env(victoria_metrics.url)
    body = {"tickers": ["9984.T"]}
    results = []
    # Each run gets a fresh state directory, as a new Cloud Run container would.
    for run in ("first", "second"):
        async with serve({**base_env(redis_server.url, tmp_path / run), **influx}) as running:
            response = await running.client.post("/api/v1/ingest/run-daily", json=body)
            job = await running.wait_for_status(response.json()["job_id"], {"completed", "failed"})
        assert job["status"] == "completed", job["error"]
        results.append(job["result"])

    first, second = results
    assert first["bars_written"] > 0
    assert second["bars_written"] == 0
    assert second["bars_skipped"] == first["bars_written"] + first["bars_rejected"]
    stored = json.loads(await redis.get(keys.WATERMARK))
    assert stored["last_days"]["9984.T"] == "2024-12-24"
    assert not list(tmp_path.rglob("*.watermark.json"))


async def test_concurrent_jobs_keep_every_ticker(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    tickers = ["7203.T", "7974.T", "8306.T", "9984.T"]
    async with serve(base_env(redis_server.url, tmp_path)) as running:
        responses = await asyncio.gather(
            *(
                running.client.post("/api/v1/ingest/run-daily", json={"tickers": [ticker]})
                for ticker in tickers
            )
        )
        jobs = [
            await running.wait_for_status(response.json()["job_id"], {"completed", "failed"})
            for response in responses
        ]

    assert [job["status"] for job in jobs] == ["completed"] * 4
    lines = (tmp_path / "points.lp").read_text().splitlines()
    for job, ticker in zip(jobs, tickers, strict=True):
        count = sum(1 for line in lines if f",ticker={ticker} " in line)
        assert count == job["result"]["bars_written"], ticker
    watermark = json.loads((tmp_path / "points.lp.watermark.json").read_text())
    assert sorted(watermark["last_days"]) == tickers


async def test_concurrent_influx_jobs_keep_every_watermark(
    redis_server: RedisServer, redis: Redis, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    env = {
        **base_env(redis_server.url, tmp_path),
        **influx_env(victoria_metrics.url),
    }
    tickers = ["7203.T", "7974.T", "8306.T", "9984.T"]
    async with serve(env) as running:
        responses = await asyncio.gather(
            *(
                running.client.post("/api/v1/ingest/run-daily", json={"tickers": [ticker]})
                for ticker in tickers
            )
        )
        for response in responses:
            job = await running.wait_for_status(response.json()["job_id"], {"completed", "failed"})
            assert job["status"] == "completed", job["error"]

    stored = json.loads(await redis.get(keys.WATERMARK))
    assert sorted(stored["last_days"]) == tickers
