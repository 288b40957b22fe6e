"""The consumer-group reader of the global stream, against real Redis servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from jobstore import keys
from jobstore.consumer import GroupReader
from jobstore.errors import JobStoreUnavailable
from jobstore.store import JobStore
from jobstore.tail import StreamEntry
from tests.servers import RedisServer


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, lease_ms=30_000)


def reader(redis: Redis, consumer: str, **options: int) -> GroupReader:
    return GroupReader(redis, group="dashboards", consumer=consumer, block_ms=100, **options)


async def read_until_quiet(group_reader: GroupReader, *, ack: bool) -> list[StreamEntry]:
    """Read until a blocking read returns nothing, acknowledging each batch when `ack`."""
    seen: list[StreamEntry] = []
    while batch := await group_reader.read():
        seen.extend(batch)
        if ack:
            await group_reader.ack(*(entry.entry_id for entry in batch))
    return seen


async def create_jobs(store: JobStore, count: int) -> list[str]:
    job_ids = [new_id() for _ in range(count)]
    for job_id in job_ids:
        await store.create(job_id, {})
    return job_ids


async def test_group_delivers_every_event_once(store: JobStore, redis: Redis) -> None:
    group_reader = reader(redis, "a")
    await group_reader.ensure_group()
    job_ids = await create_jobs(store, 150)

    seen = await read_until_quiet(group_reader, ack=True)

    assert [entry.job_id for entry in seen] == job_ids
    assert all(entry.event.version == 1 for entry in seen)
    assert await redis.xpending(keys.GLOBAL_EVENTS, "dashboards") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }


async def test_group_created_late_reads_older_entries(store: JobStore, redis: Redis) -> None:
    job_ids = await create_jobs(store, 3)
    group_reader = reader(redis, "a")
    await group_reader.ensure_group()
    await group_reader.ensure_group()

    seen = await read_until_quiet(group_reader, ack=True)

    assert [entry.job_id for entry in seen] == job_ids


async def test_two_consumers_split_the_entries(store: JobStore, redis: Redis) -> None:
    first, second = reader(redis, "a", count=5), reader(redis, "b", count=5)
    await first.ensure_group()
    job_ids = await create_jobs(store, 20)

    batches = [await first.read(), await second.read(), await first.read(), await second.read()]

    ids = [entry.job_id for batch in batches for entry in batch]
    assert sorted(ids) == sorted(job_ids)
    assert all(len(batch) == 5 for batch in batches)


async def test_unacked_entries_return_after_restart(store: JobStore, redis: Redis) -> None:
    crashed = reader(redis, "a")
    await crashed.ensure_group()
    job_ids = await create_jobs(store, 4)
    assert len(await crashed.read()) == 4

    restarted = reader(redis, "a")
    again = await restarted.read()

    assert [entry.job_id for entry in again] == job_ids
    assert await restarted.read() == []


async def test_dead_consumer_entries_are_claimed(store: JobStore, redis: Redis) -> None:
    dead = reader(redis, "dead", claim_idle_ms=50)
    await dead.ensure_group()
    job_ids = await create_jobs(store, 6)
    delivered = await dead.read()
    await dead.ack(*(entry.entry_id for entry in delivered[:2]))
    # Idle time only grows, so after this sleep the other four are claimable.
    await asyncio.sleep(0.2)

    survivor = reader(redis, "survivor", claim_idle_ms=50)
    claimed = await survivor.read()
    await survivor.ack(*(entry.entry_id for entry in claimed))

    assert [entry.job_id for entry in claimed] == job_ids[2:]
    pending = await redis.xpending(keys.GLOBAL_EVENTS, "dashboards")
    assert pending["pending"] == 0


async def test_trimmed_pending_entry_is_skipped(store: JobStore, redis: Redis) -> None:
    dead = reader(redis, "dead", claim_idle_ms=50)
    await dead.ensure_group()
    job_ids = await create_jobs(store, 3)
    delivered = await dead.read()
    await redis.xdel(keys.GLOBAL_EVENTS, delivered[0].entry_id)
    await asyncio.sleep(0.2)

    claimed = await reader(redis, "survivor", claim_idle_ms=50).read()

    assert [entry.job_id for entry in claimed] == job_ids[1:]


async def test_deleted_stream_recreates_the_group(store: JobStore, redis: Redis) -> None:
    group_reader = reader(redis, "a")
    await group_reader.ensure_group()
    await create_jobs(store, 2)
    await read_until_quiet(group_reader, ack=True)
    await redis.delete(keys.GLOBAL_EVENTS)

    assert await group_reader.read() == []
    later = await create_jobs(store, 2)
    seen = await read_until_quiet(group_reader, ack=True)

    assert [entry.job_id for entry in seen] == later


async def test_unreadable_entry_is_acked_and_skipped(store: JobStore, redis: Redis) -> None:
    group_reader = reader(redis, "a")
    await group_reader.ensure_group()
    await redis.xadd(keys.GLOBAL_EVENTS, {"job_id": "no-version-field"})
    job_ids = await create_jobs(store, 1)

    seen = await read_until_quiet(group_reader, ack=True)

    assert [entry.job_id for entry in seen] == job_ids
    assert (await redis.xpending(keys.GLOBAL_EVENTS, "dashboards"))["pending"] == 0


@pytest.fixture
async def own_redis(own_redis_server: RedisServer) -> AsyncIterator[Redis]:
    # Retries let the first command after a restart replace a stale pooled
    # connection, as the service's own client does.
    client = Redis.from_url(
        own_redis_server.url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
    )
    yield client
    await client.aclose()


async def test_redis_restart_loses_no_events(
    own_redis_server: RedisServer, own_redis: Redis
) -> None:
    store = JobStore(own_redis)
    group_reader = reader(own_redis, "a")
    await group_reader.ensure_group()
    before = await create_jobs(store, 5)
    first = await group_reader.read()
    await group_reader.ack(*(entry.entry_id for entry in first[:3]))

    own_redis_server.stop()
    with pytest.raises(JobStoreUnavailable):
        await group_reader.read()
    own_redis_server.start()
    after = await create_jobs(store, 5)
    # A process restarted under the same consumer name, after the outage.
    restarted = reader(own_redis, "a")
    rest = await read_until_quiet(restarted, ack=True)

    assert [entry.job_id for entry in first] == before
    assert [entry.job_id for entry in rest] == before[3:] + after


async def test_reader_continues_after_redis_restart(
    own_redis_server: RedisServer, own_redis: Redis
) -> None:
    store = JobStore(own_redis)
    group_reader = reader(own_redis, "a")
    await group_reader.ensure_group()
    before = await create_jobs(store, 3)
    first = await read_until_quiet(group_reader, ack=True)

    own_redis_server.stop()
    own_redis_server.start()
    after = await create_jobs(store, 3)
    rest = await read_until_quiet(group_reader, ack=True)

    assert [entry.job_id for entry in first] == before
    assert [entry.job_id for entry in rest] == after
