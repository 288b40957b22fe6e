"""The global stream, the job indexes, re-runs, retention and legacy records."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from redis.asyncio import Redis

from jobstore import keys
from jobstore.errors import JobNotFinished, JobNotFound
from jobstore.events import EventType, JobStatus
from jobstore.legacy import LegacyRecordError
from jobstore.listing import InvalidCursor
from jobstore.store import JobStore, Retention


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, lease_ms=30_000)


async def finish(store: JobStore, job_id: str, status: JobStatus) -> None:
    lease = await store.start(job_id)
    if status is JobStatus.COMPLETED:
        await store.complete(lease, {"bars_written": 1})
    elif status is JobStatus.FAILED:
        await store.fail(job_id, "boom", lease=lease)


async def test_global_stream_copies_every_event(store: JobStore, redis: Redis) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await finish(store, job_id, JobStatus.COMPLETED)

    entries = await redis.xrange(keys.GLOBAL_EVENTS)
    assert [fields["job_id"] for _, fields in entries] == [job_id] * 3
    assert [fields["type"] for _, fields in entries] == ["created", "started", "completed"]
    assert [fields["version"] for _, fields in entries] == ["1", "2", "3"]
    own = await store.events(job_id)
    assert [json.loads(fields["data"]) for _, fields in entries] == [e.data for e in own]


async def test_status_index_follows_transitions(store: JobStore, redis: Redis) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    assert await redis.zscore(keys.status_index_key(JobStatus.QUEUED), job_id) is not None

    lease = await store.start(job_id)
    assert await redis.zscore(keys.status_index_key(JobStatus.QUEUED), job_id) is None
    assert await redis.zscore(keys.status_index_key(JobStatus.RUNNING), job_id) is not None

    await store.complete(lease, {})
    for status in JobStatus:
        member = await redis.zscore(keys.status_index_key(status), job_id)
        assert (member is not None) == (status is JobStatus.COMPLETED), status


async def test_filter_by_status_over_10000_jobs(store: JobStore) -> None:
    expected_failed: set[str] = set()
    job_ids = [new_id() for _ in range(10_000)]
    for start in range(0, len(job_ids), 50):
        await asyncio.gather(*(store.create(job_id, {}) for job_id in job_ids[start : start + 50]))
    for number, job_id in enumerate(job_ids[:300]):
        if number % 3 == 0:
            expected_failed.add(job_id)
            await finish(store, job_id, JobStatus.FAILED)
        else:
            await finish(store, job_id, JobStatus.COMPLETED)

    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_jobs(status=JobStatus.FAILED, limit=30, cursor=cursor)
        seen.extend(view.job_id for view in page.jobs)
        assert all(view.status is JobStatus.FAILED for view in page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert len(seen) == len(set(seen))
    assert set(seen) == expected_failed
    queued = await store.list_jobs(status=JobStatus.QUEUED, limit=10_000)
    assert len(queued.jobs) == 9_700


async def test_list_pages_newest_first_without_repeats(store: JobStore) -> None:
    job_ids = [new_id() for _ in range(25)]
    for job_id in job_ids:
        await store.create(job_id, {})

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.list_jobs(limit=7, cursor=cursor)
        seen.extend(view.job_id for view in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert sorted(seen) == sorted(job_ids)
    created = [view.created_at for view in (await store.list_jobs(limit=25)).jobs]
    assert created == sorted(created, reverse=True)


async def test_list_since_filters_by_creation(store: JobStore) -> None:
    old = new_id()
    await store.create(old, {})
    await asyncio.sleep(0.01)
    view, _ = await store.create(new_id(), {})
    since_ms = int(view.created_at.timestamp() * 1000)

    page = await store.list_jobs(since_ms=since_ms)

    assert [job.job_id for job in page.jobs] == [view.job_id]


async def test_list_rejects_bad_cursor(store: JobStore) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_jobs(cursor="yesterday")


async def test_rerun_links_old_and_new_job(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {"date": "2024-12-24", "tickers": ["7203.T"]})
    await finish(store, job_id, JobStatus.FAILED)
    failed_view = await store.get(job_id)

    new_view, created = await store.rerun(job_id)

    assert created

    assert new_view.status is JobStatus.QUEUED
    assert new_view.job_id != job_id
    new_created = (await store.events(new_view.job_id))[0]
    assert new_created.data["rerun_of"] == job_id
    assert new_created.data["params"] == {"date": "2024-12-24", "tickers": ["7203.T"]}
    old_events = await store.events(job_id)
    assert old_events[-1].type is EventType.RERUN_REQUESTED
    assert old_events[-1].data == {"rerun_job_id": new_view.job_id}
    assert await store.get(job_id) == failed_view


async def test_rerun_refused_while_running(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await store.start(job_id)

    with pytest.raises(JobNotFinished) as caught:
        await store.rerun(job_id)
    assert caught.value.status is JobStatus.RUNNING


async def test_rerun_unknown_job(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        await store.rerun(new_id())


async def test_concurrent_reruns_create_one_job(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await finish(store, job_id, JobStatus.FAILED)

    results = await asyncio.gather(*(store.rerun(job_id) for _ in range(5)))

    assert len({view.job_id for view, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    links = [e for e in await store.events(job_id) if e.type is EventType.RERUN_REQUESTED]
    assert len(links) == 1


async def test_rerun_again_returns_same_job(store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await finish(store, job_id, JobStatus.FAILED)

    first, first_created = await store.rerun(job_id)
    second, second_created = await store.rerun(job_id)

    assert first_created
    assert not second_created
    assert second.job_id == first.job_id


async def test_finished_jobs_expire_by_status(redis: Redis) -> None:
    store = JobStore(redis, retention=Retention(completed_s=100, failed_s=1000))
    completed, failed, queued = new_id(), new_id(), new_id()
    for job_id in (completed, failed, queued):
        await store.create(job_id, {})
    await finish(store, completed, JobStatus.COMPLETED)
    await finish(store, failed, JobStatus.FAILED)

    assert 0 < await redis.ttl(keys.events_key(completed)) <= 100
    assert 0 < await redis.ttl(keys.state_key(completed)) <= 100
    assert 100 < await redis.ttl(keys.events_key(failed)) <= 1000
    assert await redis.ttl(keys.state_key(queued)) == -1


async def test_expired_job_disappears_from_listing(redis: Redis, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})
    await finish(store, job_id, JobStatus.COMPLETED)
    await redis.delete(keys.events_key(job_id), keys.state_key(job_id))

    page = await store.list_jobs(status=JobStatus.COMPLETED)

    assert page.jobs == []
    assert await redis.zscore(keys.status_index_key(JobStatus.COMPLETED), job_id) is None


async def test_global_stream_trimmed_by_age(redis: Redis) -> None:
    for number in range(1, 251):
        await redis.xadd(keys.GLOBAL_EVENTS, {"job_id": "ancient"}, id=f"{number}-0")
    store = JobStore(redis, retention=Retention(global_stream_s=60))
    new_ids = [new_id() for _ in range(3)]
    for job_id in new_ids:
        await store.create(job_id, {})

    job_ids = [fields["job_id"] for _, fields in await redis.xrange(keys.GLOBAL_EVENTS)]

    # MINID ~ removes whole stream nodes (100 entries each by default), so
    # up to one node of old entries may remain; the new ones always do.
    assert job_ids.count("ancient") <= 100
    assert job_ids[-3:] == new_ids


async def test_legacy_celery_hash_reads_as_job(store: JobStore, redis: Redis) -> None:
    job_id = new_id()
    await redis.hset(
        keys.legacy_job_key(job_id),
        mapping={
            "status": "SUCCESS",
            "progress": "100",
            "message": "done",
            "result": json.dumps({"bars_written": 42}),
            "created_at": "2026-11-30T21:00:00+00:00",
            "updated_at": "2026-11-30T21:03:00+00:00",
        },
    )

    view = await store.get_legacy(job_id)

    assert view is not None
    assert view.status is JobStatus.COMPLETED
    assert view.result == {"bars_written": 42}
    assert view.to_json()["updated_at"] == "2026-11-30T21:03:00.000Z"
    assert await store.get(job_id) is None


async def test_legacy_hash_with_unknown_status_is_an_error(store: JobStore, redis: Redis) -> None:
    job_id = new_id()
    await redis.hset(
        keys.legacy_job_key(job_id), mapping={"status": "WEIRD", "created_at": "2026-11-30"}
    )

    with pytest.raises(LegacyRecordError):
        await store.get_legacy(job_id)


async def test_listing_skips_expired_without_losing_live_jobs(
    redis: Redis, store: JobStore
) -> None:
    job_ids = [new_id() for _ in range(300)]
    for start in range(0, len(job_ids), 50):
        await asyncio.gather(*(store.create(job_id, {}) for job_id in job_ids[start : start + 50]))
    newest_first = [view.job_id for view in (await store.list_jobs(limit=300)).jobs]
    expired = newest_first[100:150]
    for job_id in expired:
        await redis.delete(keys.events_key(job_id), keys.state_key(job_id))

    page = await store.list_jobs(limit=1000)

    assert page.next_cursor is None
    assert [view.job_id for view in page.jobs] == [
        job_id for job_id in newest_first if job_id not in expired
    ]


async def test_list_rejects_non_ascii_digit_cursor(store: JobStore) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_jobs(cursor="\u00b2:x")
