from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from google.cloud import tasks_v2

from app.dispatch.base import TaskPayload
from app.dispatch.cloud_tasks import (
    CloudTasksConfig,
    CloudTasksDispatcher,
    job_id_for_task,
    task_id_for_job,
)

CONFIG = CloudTasksConfig(
    project="kaboom-prod",
    worker_base_url="https://kaboom-ingest-abc123-an.a.run.app/",
    service_account_email="ingest-tasks@kaboom-prod.iam.gserviceaccount.com",
    oidc_audience="https://kaboom-ingest-abc123-an.a.run.app",
)


def test_task_id_has_hash_prefix() -> None:
    job_id = "3f2b8c1e-5d4a-4e6f-9b7c-2a1d0e9f8c7b"

    task_id = task_id_for_job(job_id)

    prefix, _, rest = task_id.partition("-")
    assert rest == job_id
    assert len(prefix) == 8
    assert all(c in "0123456789abcdef" for c in prefix)


def test_task_id_prefixes_differ_for_close_ids() -> None:
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(5)]

    prefixes = {task_id_for_job(i).split("-")[0] for i in ids}

    assert len(prefixes) == 5


def test_task_id_round_trip() -> None:
    job_id = str(uuid.uuid4())

    assert job_id_for_task(task_id_for_job(job_id)) == job_id
    assert job_id_for_task(CONFIG.task_name(job_id)) == job_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no-hash-prefix",
        "deadbeef-3f2b8c1e-5d4a-4e6f-9b7c-2a1d0e9f8c7b",
        "projects/p/locations/l/queues/q/tasks/12345678",
    ],
)
def test_job_id_for_foreign_task_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        job_id_for_task(text)


@pytest.mark.parametrize("job_id", ["has space", "slash/inside", "x" * 492])
def test_task_id_for_invalid_job_id_rejected(job_id: str) -> None:
    with pytest.raises(ValueError):
        task_id_for_job(job_id)


def test_config_paths() -> None:
    assert CONFIG.queue_path == (
        "projects/kaboom-prod/locations/asia-northeast1/queues/ingest-jobs"
    )
    assert CONFIG.worker_url == (
        "https://kaboom-ingest-abc123-an.a.run.app/internal/ingest/run-daily"
    )


@pytest.mark.parametrize("deadline_s", [14, 1801, 0])
def test_config_rejects_deadline_out_of_range(deadline_s: int) -> None:
    with pytest.raises(ValueError, match="dispatch_deadline_s"):
        replace(CONFIG, dispatch_deadline_s=deadline_s)


@pytest.mark.parametrize("deadline_s", [15, 1800])
def test_config_accepts_deadline_limits(deadline_s: int) -> None:
    assert replace(CONFIG, dispatch_deadline_s=deadline_s).dispatch_deadline_s == deadline_s


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("oidc_audience", ""),
        ("project", ""),
        ("service_account_email", ""),
        ("worker_base_url", "kaboom-ingest.run.app"),
    ],
)
def test_config_rejects_missing_values(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        replace(CONFIG, **{field: value})  # type: ignore[arg-type]


def test_build_task_fields() -> None:
    # build_task does not use the client, so none is needed here.
    dispatcher = CloudTasksDispatcher(None, CONFIG)  # type: ignore[arg-type]
    payload = TaskPayload(job_id=str(uuid.uuid4()), date="2024-06-03", tickers=("7203.T",))

    task = dispatcher.build_task(payload)

    assert task.name == CONFIG.task_name(payload.job_id)
    assert task.dispatch_deadline.total_seconds() == 600
    assert task.http_request.http_method == tasks_v2.HttpMethod.POST
    assert task.http_request.url == CONFIG.worker_url
    assert task.http_request.headers == {"Content-Type": "application/json"}
    assert json.loads(task.http_request.body) == payload.to_json()
    assert task.http_request.oidc_token.audience == CONFIG.oidc_audience
    assert task.http_request.oidc_token.service_account_email == CONFIG.service_account_email
