"""Support endpoints: event history, replay with `at`, re-runs, listing, legacy and expired jobs."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from app.dispatch.base import DispatchError, TaskPayload
from jobstore import keys
from jobstore.events import JobStatus
from jobstore.store import JobStore, Lease
from tests.app.conftest import RunningApp
from tests.app.test_jobs_api import assert_job_contract

JOBS = "/api/v1/ingest/jobs"


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(redis: Redis) -> JobStore:
    """A store on the app's Redis, to drive jobs step by step without a worker."""
    return JobStore(redis, lease_ms=30_000)


async def status_of(running_app: RunningApp, job_id: str, **params: str) -> dict[str, Any]:
    response = await running_app.client.get(f"{JOBS}/{job_id}", params=params)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


async def run_job_by_hand(store: JobStore, job_id: str) -> list[str]:
    """Create a job and move it through retries to completion; return the step names."""
    await store.create(job_id, {"date": "2024-12-24", "tickers": ["7203.T", "7974.T"]})
    first = await store.start(job_id, delivery={"X-CloudTasks-TaskRetryCount": "0"})
    await store.progress(first, 50, "7203.T done")
    await store.fail_attempt(
        first, "InfluxDB timed out", delivery={"X-CloudTasks-TaskRetryCount": "0"}
    )
    second = await store.start(job_id, delivery={"X-CloudTasks-TaskRetryCount": "1"})
    await store.progress(second, 50, "7203.T done")
    await store.progress(second, 100, "7974.T done")
    await store.complete(second, {"bars_written": 20})
    return [
        "created",
        "started",
        "progress",
        "attempt_failed",
        "started",
        "progress",
        "progress",
        "completed",
    ]


async def test_history_lists_events_in_order(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    steps = await run_job_by_hand(store, job_id)

    response = await running_app.client.get(f"{JOBS}/{job_id}/events")

    assert response.status_code == 200
    doc = response.json()
    assert doc["job_id"] == job_id
    assert doc["next_cursor"] is None
    events = doc["events"]
    assert [event["type"] for event in events] == steps
    assert [event["id"] for event in events] == [f"0-{n}" for n in range(1, len(steps) + 1)]
    assert [event["version"] for event in events] == list(range(1, len(steps) + 1))
    assert all(event["job_id"] == job_id for event in events)
    assert events[0]["data"]["params"] == {"date": "2024-12-24", "tickers": ["7203.T", "7974.T"]}
    assert events[3]["data"] == {"error": "InfluxDB timed out"}
    assert events[3]["delivery"] == {"X-CloudTasks-TaskRetryCount": "0"}
    assert events[4]["attempt"] == 2
    assert events[4]["delivery"] == {"X-CloudTasks-TaskRetryCount": "1"}
    assert events[2]["delivery"] is None
    assert set(events[0]) == {
        "id",
        "job_id",
        "version",
        "type",
        "at",
        "attempt",
        "delivery",
        "data",
    }


async def test_history_pages_with_cursor(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    steps = await run_job_by_hand(store, job_id)

    pages: list[list[dict[str, Any]]] = []
    params = {"limit": "3"}
    while True:
        doc = (await running_app.client.get(f"{JOBS}/{job_id}/events", params=params)).json()
        pages.append(doc["events"])
        if doc["next_cursor"] is None:
            break
        params = {"limit": "3", "after": doc["next_cursor"]}

    assert [len(page) for page in pages] == [3, 3, 2]
    ids = [event["id"] for page in pages for event in page]
    assert ids == [f"0-{n}" for n in range(1, len(steps) + 1)]


async def test_history_page_ending_exactly_has_no_cursor(
    running_app: RunningApp, store: JobStore
) -> None:
    job_id = new_id()
    await run_job_by_hand(store, job_id)

    doc = (
        await running_app.client.get(
            f"{JOBS}/{job_id}/events", params={"after": "0-4", "limit": "4"}
        )
    ).json()

    assert [event["id"] for event in doc["events"]] == ["0-5", "0-6", "0-7", "0-8"]
    assert doc["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "5"}, "after"),
        ({"after": "1-5"}, "after"),
        ({"after": "0--1"}, "after"),
        ({"after": "0-x"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
    ],
)
async def test_history_rejects_invalid_parameters(
    running_app: RunningApp, store: JobStore, params: dict[str, str], field: str
) -> None:
    job_id = new_id()
    await store.create(job_id, {})

    response = await running_app.client.get(f"{JOBS}/{job_id}/events", params=params)

    assert response.status_code == 422
    assert response.json()["field"] == field
    assert params[field] in response.json()["error"]


async def test_history_of_unknown_job_is_404(running_app: RunningApp) -> None:
    job_id = new_id()
    response = await running_app.client.get(f"{JOBS}/{job_id}/events")

    assert response.status_code == 404
    assert response.json()["job_id"] == job_id


async def test_replay_matches_status_at_each_step(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    seen: list[dict[str, Any]] = []

    async def record() -> None:
        seen.append(await status_of(running_app, job_id))

    await store.create(job_id, {"date": None, "tickers": None})
    await record()
    first = await store.start(job_id)
    await record()
    await store.progress(first, 30, "one third")
    await record()
    await store.fail_attempt(first, "source unreachable")
    await record()
    second = await store.start(job_id)
    await record()
    await store.progress(second, 60, "two thirds")
    await record()
    await store.fail(job_id, "gave up", lease=second)
    await record()
    await store.rerun(job_id)
    await record()

    for version, expected in enumerate(seen, start=1):
        replayed = await status_of(running_app, job_id, at=f"0-{version}")
        assert replayed == expected, f"at=0-{version}"
        assert_job_contract(replayed)
    assert len({json.dumps(doc, sort_keys=True) for doc in seen}) == len(seen) - 1


@pytest.mark.parametrize("at", ["3", "0-0", "0-", "1-1", "0-1.5", ""])
async def test_replay_rejects_malformed_event_id(
    running_app: RunningApp, store: JobStore, at: str
) -> None:
    job_id = new_id()
    await store.create(job_id, {})

    response = await running_app.client.get(f"{JOBS}/{job_id}", params={"at": at})

    assert response.status_code == 422
    assert response.json()["field"] == "at"


async def test_replay_past_the_end_is_404(running_app: RunningApp, store: JobStore) -> None:
    job_id = new_id()
    await store.create(job_id, {})

    past_end = await running_app.client.get(f"{JOBS}/{job_id}", params={"at": "0-2"})
    unknown = await running_app.client.get(f"{JOBS}/{new_id()}", params={"at": "0-1"})

    assert past_end.status_code == 404
    assert past_end.json()["field"] == "at"
    assert unknown.status_code == 404
    assert "not found" in unknown.json()["error"]


async def finish_by_hand(store: JobStore, job_id: str, status: JobStatus) -> Lease:
    await store.create(job_id, {"date": None, "tickers": ["7203.T"]})
    lease = await store.start(job_id)
    if status is JobStatus.COMPLETED:
        await store.complete(lease, {"bars_written": 1})
    elif status is JobStatus.FAILED:
        await store.fail(job_id, "boom", lease=lease)
    return lease


async def test_rerun_refused_while_running(running_app: RunningApp, store: JobStore) -> None:
    queued, running = new_id(), new_id()
    await store.create(queued, {})
    await finish_by_hand(store, running, JobStatus.RUNNING)

    for job_id, status in ((queued, "queued"), (running, "running")):
        response = await running_app.client.post(f"{JOBS}/{job_id}/rerun")
        assert response.status_code == 409, job_id
        assert response.json()["status"] == status
        assert response.json()["job_id"] == job_id
    assert len(await store.events(running)) == 2


async def test_rerun_of_unknown_job_is_404(running_app: RunningApp) -> None:
    response = await running_app.client.post(f"{JOBS}/{new_id()}/rerun")

    assert response.status_code == 404


async def test_rerun_queues_and_runs_a_linked_job(running_app: RunningApp, store: JobStore) -> None:
    old_id = new_id()
    await finish_by_hand(store, old_id, JobStatus.FAILED)

    response = await running_app.client.post(f"{JOBS}/{old_id}/rerun")

    assert response.status_code == 202
    doc = response.json()
    assert doc["rerun_of"] == old_id
    assert_job_contract(doc["job"])
    new_job_id = doc["job"]["job_id"]
    assert new_job_id != old_id
    assert response.headers["Location"] == f"{JOBS}/{new_job_id}"
    final = await running_app.wait_for_status(new_job_id, {"completed", "failed"})
    assert final["status"] == "completed"
    created = (await store.events(new_job_id))[0]
    assert created.data["rerun_of"] == old_id
    assert created.data["params"] == {"date": None, "tickers": ["7203.T"]}
    old_events = await store.events(old_id)
    assert old_events[-1].data == {"rerun_job_id": new_job_id}
    assert (await status_of(running_app, old_id))["status"] == "failed"


class RejectingDispatcher:
    """A dispatcher whose queue rejects every task."""

    def __init__(self) -> None:
        self.payloads: list[TaskPayload] = []

    async def dispatch(self, payload: TaskPayload) -> None:
        self.payloads.append(payload)
        raise DispatchError("queue rejected the task")

    async def aclose(self) -> None:
        return None


async def test_rerun_dispatch_failure_fails_new_job(
    running_app: RunningApp, store: JobStore
) -> None:
    old_id = new_id()
    await finish_by_hand(store, old_id, JobStatus.COMPLETED)
    services = running_app.app.state.services
    original, rejecting = services.dispatcher, RejectingDispatcher()
    services.dispatcher = rejecting
    try:
        response = await running_app.client.post(f"{JOBS}/{old_id}/rerun")
    finally:
        services.dispatcher = original

    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    new_job_id = response.json()["job_id"]
    assert [payload.job_id for payload in rejecting.payloads] == [new_job_id]
    assert rejecting.payloads[0].tickers == ("7203.T",)
    failed = await status_of(running_app, new_job_id)
    assert failed["status"] == "failed"
    assert "queue rejected the task" in failed["error"]


async def test_list_filters_by_status_over_many_jobs(
    running_app: RunningApp, store: JobStore
) -> None:
    job_ids = [new_id() for _ in range(600)]
    for start in range(0, len(job_ids), 50):
        await asyncio.gather(*(store.create(job_id, {}) for job_id in job_ids[start : start + 50]))
    expected_failed = set()
    for number, job_id in enumerate(job_ids[:90]):
        lease = await store.start(job_id)
        if number % 3 == 0:
            await store.fail(job_id, "boom", lease=lease)
            expected_failed.add(job_id)
        else:
            await store.complete(lease, {})

    seen: list[str] = []
    params = {"status": "failed", "limit": "7"}
    for _ in range(100):
        response = await running_app.client.get(JOBS, params=params)
        assert response.status_code == 200
        doc = response.json()
        assert all(job["status"] == "failed" for job in doc["jobs"])
        seen.extend(job["job_id"] for job in doc["jobs"])
        if doc["next_cursor"] is None:
            break
        params = {**params, "cursor": doc["next_cursor"]}

    assert len(seen) == len(set(seen))
    assert set(seen) == expected_failed
    queued = (
        await running_app.client.get(JOBS, params={"status": "queued", "limit": "1000"})
    ).json()
    assert len(queued["jobs"]) == 510
    assert_job_contract(queued["jobs"][0])


async def test_list_since_and_newest_first(running_app: RunningApp, store: JobStore) -> None:
    old_id = new_id()
    await store.create(old_id, {})
    await asyncio.sleep(0.01)
    newer, _ = await store.create(new_id(), {})
    newest, _ = await store.create(new_id(), {})
    since = newer.to_json()["created_at"]

    recent = (await running_app.client.get(JOBS, params={"since": since})).json()
    by_date = (await running_app.client.get(JOBS, params={"since": since[:10]})).json()

    assert [job["job_id"] for job in recent["jobs"]] == [newest.job_id, newer.job_id]
    assert [job["job_id"] for job in by_date["jobs"]][-1] == old_id
    assert recent["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "FAILED"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-13-01"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"cursor": "page-2"}, "cursor"),
    ],
)
async def test_list_rejects_invalid_parameters(
    running_app: RunningApp, params: dict[str, str], field: str
) -> None:
    response = await running_app.client.get(JOBS, params=params)

    assert response.status_code == 422
    assert response.json()["field"] == field


async def test_legacy_hash_read_through_http(running_app: RunningApp, redis: Redis) -> None:
    job_id = new_id()
    await redis.hset(
        keys.legacy_job_key(job_id),
        mapping={
            "status": "FAILURE",
            "progress": "40",
            "message": "worker lost",
            "error": "WorkerLostError",
            "created_at": "2026-11-30T21:00:00+00:00",
        },
    )

    doc = await status_of(running_app, job_id)
    history = await running_app.client.get(f"{JOBS}/{job_id}/events")

    assert_job_contract(doc)
    assert doc["status"] == "failed"
    assert doc["error"] == "WorkerLostError"
    assert doc["progress"] == 40
    assert doc["created_at"] == "2026-11-30T21:00:00.000Z"
    assert history.status_code == 404
    assert "Celery-era" in history.json()["error"]


@pytest.mark.parametrize(
    "record",
    [
        {"status": "WEIRD", "created_at": "2026-11-30T21:00:00+00:00"},
        {"status": "SUCCESS"},
        {"status": "SUCCESS", "created_at": "last tuesday"},
        {"status": "SUCCESS", "created_at": "2026-11-30T21:00:00", "result": "{not json"},
    ],
)
async def test_unreadable_legacy_hash_is_422_with_record(
    running_app: RunningApp, redis: Redis, record: dict[str, str]
) -> None:
    job_id = new_id()
    await redis.hset(keys.legacy_job_key(job_id), mapping=record)

    response = await running_app.client.get(f"{JOBS}/{job_id}")

    assert response.status_code == 422
    doc = response.json()
    assert doc["job_id"] == job_id
    assert doc["legacy_record"] == record
    assert job_id in doc["error"]


@pytest.mark.parametrize("how", ["delete", "expire"])
async def test_expired_job_is_404_everywhere(
    running_app: RunningApp, store: JobStore, redis: Redis, how: str
) -> None:
    job_id = new_id()
    await finish_by_hand(store, job_id, JobStatus.COMPLETED)
    assert (await status_of(running_app, job_id))["status"] == "completed"

    job_keys = (keys.events_key(job_id), keys.state_key(job_id))
    if how == "delete":
        await redis.delete(*job_keys)
    else:
        for key in job_keys:
            await redis.pexpire(key, 1)
        while await redis.exists(*job_keys):
            await asyncio.sleep(0.01)

    for path, params in (
        (f"{JOBS}/{job_id}", {}),
        (f"{JOBS}/{job_id}", {"at": "0-1"}),
        (f"{JOBS}/{job_id}/events", {}),
        (f"{JOBS}/{job_id}/stream", {}),
    ):
        response = await running_app.client.get(path, params=params)
        assert response.status_code == 404, (path, params)
        assert response.json()["job_id"] == job_id
    rerun = await running_app.client.post(f"{JOBS}/{job_id}/rerun")
    assert rerun.status_code == 404
    listed = (await running_app.client.get(JOBS)).json()
    assert job_id not in [job["job_id"] for job in listed["jobs"]]
