"""Compare the job store's guarded append with plain XADD, in one run.

Every job event goes through JobStore: one HMGET of the snapshot, the fold
in Python, then the Lua script that checks and appends. This measures
progress events per second through that path against two baselines on
the same server: one plain XADD per event (one round trip each, the same
shape of work) and a pipeline of XADDs (the upper bound for Redis). It
prints the ratios; absolute numbers depend on the machine.

    .venv/bin/python bench/append_throughput.py --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import own_redis_server  # noqa: E402
from jobstore.store import JobStore  # noqa: E402

FIELDS = {
    "type": "progress",
    "at": "2026-12-04T06:00:00.000Z",
    "attempt": "1",
    "data": '{"message":"7203.T: 2927 bars written, 24 rejected","percent":25}',
}


async def store_appends(redis: Redis, count: int) -> float:
    store = JobStore(redis, lease_ms=600_000)
    job_id = str(uuid.uuid4())
    await store.create(job_id, {"date": None, "tickers": None})
    lease = await store.start(job_id)
    started = time.perf_counter()
    for number in range(count):
        await store.progress(lease, number % 100, "7203.T: 2927 bars written, 24 rejected")
    return count / (time.perf_counter() - started)


async def single_xadds(redis: Redis, count: int) -> float:
    stream = f"bench:single:{uuid.uuid4()}"
    started = time.perf_counter()
    for _ in range(count):
        await redis.xadd(stream, FIELDS)
    return count / (time.perf_counter() - started)


async def pipelined_xadds(redis: Redis, count: int) -> float:
    stream = f"bench:pipeline:{uuid.uuid4()}"
    started = time.perf_counter()
    async with redis.pipeline(transaction=False) as pipe:
        for _ in range(count):
            pipe.xadd(stream, FIELDS)
        await pipe.execute()
    return count / (time.perf_counter() - started)


async def run(url: str, count: int) -> None:
    redis = Redis.from_url(url, decode_responses=True)
    try:
        await single_xadds(redis, min(count, 500))  # warm up the connection and server
        store_rate = await store_appends(redis, count)
        single_rate = await single_xadds(redis, count)
        pipeline_rate = await pipelined_xadds(redis, count)
    finally:
        await redis.aclose()
    print(f"events per run             {count:10d}")
    print(f"JobStore.progress          {store_rate:10.0f} events/s")
    print(f"plain XADD, one at a time  {single_rate:10.0f} events/s")
    print(f"plain XADD, pipelined      {pipeline_rate:10.0f} events/s")
    print(f"ratio to one-at-a-time     {single_rate / store_rate:10.1f} x slower")
    print(f"ratio to pipelined         {pipeline_rate / store_rate:10.1f} x slower")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, own_redis_server(Path(work)) as url:
        asyncio.run(run(url, args.events))


if __name__ == "__main__":
    main()
