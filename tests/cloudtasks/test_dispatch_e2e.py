"""End to end: dispatcher, real tasks client, local server, worker app."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import grpc
import pytest

from app.dispatch.base import WORKER_PATH, DispatchError, TaskPayload
from app.dispatch.cloud_tasks import task_id_for_job
from localtasks import QueueSettings, TaskState
from tests.cloudtasks.conftest import FAST_QUEUE, SERVICE_ACCOUNT, Stack, StackFactory
from tests.cloudtasks.worker import ScriptedResponse


def new_payload() -> TaskPayload:
    return TaskPayload(job_id=str(uuid.uuid4()), date="2024-06-03", tickers=("7203.T", "9984.T"))


async def test_task_arrives_as_configured(stack: Stack) -> None:
    payload = new_payload()
    task_name = stack.config.task_name(payload.job_id)

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(task_name)

    assert local_task.state is TaskState.DELIVERED
    assert local_task.task.name == (
        "projects/kaboom-test/locations/asia-northeast1/queues/ingest-jobs/tasks/"
        + task_id_for_job(payload.job_id)
    )
    assert local_task.task.dispatch_deadline == timedelta(seconds=120)
    assert local_task.attempts[0].timeout_s == 120
    assert local_task.attempts[0].url == stack.worker_base_url + WORKER_PATH
    assert local_task.attempts[0].method == "POST"

    assert len(stack.worker.received) == 1
    push = stack.worker.received[0]
    assert push.oidc_error is None
    assert push.body == payload.to_json()
    assert push.headers["content-type"] == "application/json"
    assert push.headers["x-cloudtasks-queuename"] == "ingest-jobs"
    assert push.headers["x-cloudtasks-taskname"] == task_id_for_job(payload.job_id)
    assert push.headers["x-cloudtasks-taskretrycount"] == "0"
    assert push.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert float(push.headers["x-cloudtasks-tasketa"]) > 0
    assert "x-cloudtasks-taskpreviousresponse" not in push.headers
    assert push.headers["user-agent"] == "Google-Cloud-Tasks"

    assert push.claims is not None
    assert push.claims["aud"] == stack.worker_base_url
    assert push.claims["email"] == SERVICE_ACCOUNT
    assert push.claims["email_verified"] is True
    assert push.claims["iss"] == "https://accounts.google.com"


async def test_second_dispatch_counts_as_success(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.dispatch.cloud_tasks")
    payload = new_payload()
    task_name = stack.config.task_name(payload.job_id)

    await stack.dispatcher.dispatch(payload)
    await stack.local_tasks.wait_for_task(task_name)
    await stack.dispatcher.dispatch(payload)

    assert len(stack.local_tasks.create_requests) == 2
    assert list(stack.local_tasks.tasks) == [task_name]
    assert len(stack.worker.received) == 1
    already_exists = [r for r in caplog.records if "already exists" in r.getMessage()]
    assert len(already_exists) == 1
    assert already_exists[0].job_id == payload.job_id


@pytest.mark.parametrize("status_code", [500, 404])
async def test_failing_worker_retried_to_max_attempts(stack: Stack, status_code: int) -> None:
    stack.worker.script = [ScriptedResponse(status_code)] * 10
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert local_task.state is TaskState.GAVE_UP
    assert [a.status_code for a in local_task.attempts] == [status_code] * 3
    received = stack.worker.received
    assert [p.headers["x-cloudtasks-taskretrycount"] for p in received] == [
        "0",
        "1",
        "2",
    ]
    previous = [p.headers.get("x-cloudtasks-taskpreviousresponse") for p in received]
    assert previous == [None, str(status_code), str(status_code)]
    assert received[1].headers["x-cloudtasks-taskretryreason"] == f"HTTP status {status_code}"
    assert local_task.attempts[-1].retry_delay_s is None


async def test_execution_count_skips_5xx(stack: Stack) -> None:
    stack.worker.script = [
        ScriptedResponse(503),
        ScriptedResponse(409),
        ScriptedResponse(200),
    ]
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert local_task.state is TaskState.DELIVERED
    counts = [p.headers["x-cloudtasks-taskexecutioncount"] for p in stack.worker.received]
    assert counts == ["0", "0", "1"]


async def test_retry_after_sets_delay(stack: Stack) -> None:
    stack.worker.script = [ScriptedResponse(429, headers={"Retry-After": "1"})]
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert local_task.state is TaskState.DELIVERED
    assert local_task.attempts[0].retry_after_s == 1.0
    assert local_task.attempts[0].retry_delay_s == 1.0
    assert len(local_task.attempts) == 2


async def test_retry_after_ignored_on_500(stack: Stack) -> None:
    stack.worker.script = [ScriptedResponse(500, headers={"Retry-After": "30"})]
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert local_task.state is TaskState.DELIVERED
    assert local_task.attempts[0].retry_delay_s == FAST_QUEUE.min_backoff_s


async def test_attempt_timeout_is_retried(make_stack: StackFactory) -> None:
    settings = QueueSettings(
        max_attempts=3,
        min_backoff_s=0.01,
        max_backoff_s=0.05,
        max_attempt_timeout_s=0.2,
    )
    stack = await make_stack(settings)
    stack.worker.script = [ScriptedResponse(200, delay_s=1.0)]
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert local_task.state is TaskState.DELIVERED
    assert local_task.attempts[0].status_code is None
    assert local_task.attempts[0].error == "deadline exceeded"
    assert local_task.attempts[1].status_code == 200
    second = stack.worker.received[1].headers
    assert second["x-cloudtasks-taskretryreason"] == "deadline exceeded"
    assert "x-cloudtasks-taskpreviousresponse" not in second


async def test_wrong_audience_rejected_by_worker(make_stack: StackFactory) -> None:
    stack = await make_stack(oidc_audience="https://some-other-service.example.test")
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert local_task.state is TaskState.GAVE_UP
    assert [a.status_code for a in local_task.attempts] == [401, 401, 401]
    errors = [p.oidc_error for p in stack.worker.received]
    assert all(e is not None and "'aud'" in e.reason for e in errors)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_transient_create_error_retried(stack: Stack, code: grpc.StatusCode) -> None:
    stack.local_tasks.inject_create_error(code, count=2)
    payload = new_payload()

    await stack.dispatcher.dispatch(payload)
    local_task = await stack.local_tasks.wait_for_task(stack.config.task_name(payload.job_id))

    assert len(stack.local_tasks.create_requests) == 3
    assert local_task.state is TaskState.DELIVERED
    assert len(stack.worker.received) == 1


async def test_permanent_create_error_raises(stack: Stack) -> None:
    stack.local_tasks.inject_create_error(
        grpc.StatusCode.PERMISSION_DENIED,
        message="caller lacks cloudtasks.tasks.create",
    )

    with pytest.raises(DispatchError) as excinfo:
        await stack.dispatcher.dispatch(new_payload())

    assert "PERMISSION_DENIED" in excinfo.value.reason
    assert "cloudtasks.tasks.create" in excinfo.value.reason
    assert "after retries" not in excinfo.value.reason
    assert len(stack.local_tasks.create_requests) == 1
    assert stack.local_tasks.tasks == {}


async def test_unavailable_until_timeout_raises(make_stack: StackFactory) -> None:
    stack = await make_stack(create_timeout_s=0.3)
    stack.local_tasks.inject_create_error(grpc.StatusCode.UNAVAILABLE, count=1000)

    with pytest.raises(DispatchError) as excinfo:
        await stack.dispatcher.dispatch(new_payload())

    assert "after retries" in excinfo.value.reason
    assert "UNAVAILABLE" in excinfo.value.reason
    assert len(stack.local_tasks.create_requests) >= 2
    assert stack.local_tasks.tasks == {}


async def test_invalid_task_raises_dispatch_error(make_stack: StackFactory) -> None:
    stack = await make_stack(worker_base_url="http://worker.example.test")

    with pytest.raises(DispatchError) as excinfo:
        await stack.dispatcher.dispatch(new_payload())

    assert "INVALID_ARGUMENT" in excinfo.value.reason
    assert "loopback" in excinfo.value.reason
    assert len(stack.local_tasks.create_requests) == 1
