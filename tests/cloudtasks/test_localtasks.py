"""The local Cloud Tasks server on its own: validation, headers, tokens and backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from google.api_core import exceptions as core_exceptions
from google.cloud import tasks_v2
from joserfc import jwt
from joserfc.jwk import KeySet

from app.dispatch.base import WORKER_PATH
from localtasks import QueueSettings, TaskState
from localtasks.delivery import backoff_s
from localtasks.signing import require_loopback
from tests.cloudtasks.conftest import SERVICE_ACCOUNT, Stack

PARENT = "projects/kaboom-test/locations/asia-northeast1/queues/ingest-jobs"


def http_task(stack: Stack, **fields: object) -> tasks_v2.Task:
    http_request = tasks_v2.HttpRequest(
        url=stack.worker_base_url + WORKER_PATH,
        body=b'{"job_id": "manual"}',
        headers={"Content-Type": "application/json"},
        oidc_token=tasks_v2.OidcToken(
            service_account_email=SERVICE_ACCOUNT, audience=stack.worker_base_url
        ),
    )
    return tasks_v2.Task(http_request=http_request, **fields)


async def create(stack: Stack, task: tasks_v2.Task, parent: str = PARENT) -> tasks_v2.Task:
    return await stack.client.create_task(parent=parent, task=task, timeout=5.0)


@pytest.mark.parametrize(
    ("parent", "task_fields", "message"),
    [
        ("projects/p/queues/q", {}, "parent"),
        (PARENT, {"name": f"{PARENT}/tasks/has.dot"}, "task name"),
        (PARENT, {"name": f"{PARENT}/tasks/" + "a" * 501}, "task name"),
        (
            PARENT,
            {"name": "projects/p/locations/l/queues/other/tasks/t1"},
            "not in queue",
        ),
        (PARENT, {"dispatch_deadline": timedelta(seconds=14)}, "dispatch_deadline"),
        (
            PARENT,
            {"dispatch_deadline": timedelta(minutes=30, seconds=1)},
            "dispatch_deadline",
        ),
        (
            PARENT,
            {"schedule_time": datetime.now(UTC) + timedelta(days=31)},
            "30 days",
        ),
    ],
)
async def test_invalid_request_rejected(
    stack: Stack, parent: str, task_fields: dict[str, object], message: str
) -> None:
    with pytest.raises(core_exceptions.InvalidArgument) as excinfo:
        await create(stack, http_task(stack, **task_fields), parent=parent)

    assert message in excinfo.value.message
    assert stack.local_tasks.tasks == {}


async def test_task_without_http_request_rejected(stack: Stack) -> None:
    with pytest.raises(core_exceptions.InvalidArgument) as excinfo:
        await create(stack, tasks_v2.Task(name=f"{PARENT}/tasks/t1"))

    assert "http_request" in excinfo.value.message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "required"),
        ("ftp://127.0.0.1/x", "http(s)"),
        ("/relative/path", "http(s)"),
        ("http://192.0.2.10/x", "loopback"),
    ],
)
async def test_invalid_url_rejected(stack: Stack, url: str, message: str) -> None:
    task = http_task(stack)
    task.http_request.url = url

    with pytest.raises(core_exceptions.InvalidArgument) as excinfo:
        await create(stack, task)

    assert message in excinfo.value.message


async def test_body_with_get_rejected(stack: Stack) -> None:
    task = http_task(stack)
    task.http_request.http_method = tasks_v2.HttpMethod.GET

    with pytest.raises(core_exceptions.InvalidArgument) as excinfo:
        await create(stack, task)

    assert "GET" in excinfo.value.message


async def test_oidc_token_without_email_rejected(stack: Stack) -> None:
    task = http_task(stack)
    task.http_request.oidc_token = tasks_v2.OidcToken(audience="x")

    with pytest.raises(core_exceptions.InvalidArgument) as excinfo:
        await create(stack, task)

    assert "service_account_email" in excinfo.value.message


async def test_unnamed_task_gets_name(stack: Stack) -> None:
    created = await create(stack, http_task(stack))

    assert created.name.startswith(f"{PARENT}/tasks/")
    assert created.dispatch_deadline == timedelta(minutes=10)
    assert created.http_request.body == b""
    local_task = await stack.local_tasks.wait_for_task(created.name)
    assert local_task.state is TaskState.DELIVERED
    assert local_task.attempts[0].body == b'{"job_id": "manual"}'


async def test_full_view_returns_body(stack: Stack) -> None:
    request = tasks_v2.CreateTaskRequest(
        parent=PARENT, task=http_task(stack), response_view=tasks_v2.Task.View.FULL
    )

    created = await stack.client.create_task(request=request, timeout=5.0)

    assert created.http_request.body == b'{"job_id": "manual"}'


async def test_empty_audience_uses_full_url(stack: Stack) -> None:
    task = http_task(stack)
    url = stack.worker_base_url + WORKER_PATH + "?source=manual"
    task.http_request.url = url
    task.http_request.oidc_token.audience = ""

    created = await create(stack, task)
    local_task = await stack.local_tasks.wait_for_task(created.name)

    token = local_task.attempts[0].headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, KeySet.import_key_set(stack.local_tasks.signer.jwks())).claims
    assert claims["aud"] == url
    # The worker expects its base URL, so it rejects every attempt.
    assert local_task.state is TaskState.GAVE_UP
    assert {a.status_code for a in local_task.attempts} == {401}


async def test_reserved_headers_replaced(stack: Stack) -> None:
    task = http_task(stack)
    task.http_request.headers = {
        "Content-Type": "application/json",
        "X-CloudTasks-TaskRetryCount": "99",
        "X-Google-Internal": "spoofed",
        "X-AppEngine-Country": "ZZ",
        "User-Agent": "spoofed",
        "X-Trace-Id": "abc",
    }

    created = await create(stack, task)
    await stack.local_tasks.wait_for_task(created.name)

    headers = stack.worker.received[0].headers
    assert headers["x-cloudtasks-taskretrycount"] == "0"
    assert "x-google-internal" not in headers
    assert "x-appengine-country" not in headers
    assert headers["user-agent"] == "Google-Cloud-Tasks"
    assert headers["x-trace-id"] == "abc"


async def test_body_without_content_type_gets_default(stack: Stack) -> None:
    task = http_task(stack)
    task.http_request.headers = {}

    created = await create(stack, task)
    await stack.local_tasks.wait_for_task(created.name)

    assert stack.worker.received[0].headers["content-type"] == "application/octet-stream"


async def test_schedule_time_sets_eta(stack: Stack) -> None:
    schedule_time = datetime.now(UTC) + timedelta(seconds=0.2)
    task = http_task(stack, schedule_time=schedule_time)

    created = await create(stack, task)
    local_task = await stack.local_tasks.wait_for_task(created.name)

    assert local_task.state is TaskState.DELIVERED
    eta_s = float(stack.worker.received[0].headers["x-cloudtasks-tasketa"])
    assert eta_s == pytest.approx(schedule_time.timestamp(), abs=1e-3)


async def test_jwks_served_with_max_age(stack: Stack) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(stack.local_tasks.jwks_url)

    assert response.status_code == 200
    assert "max-age=3600" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [stack.local_tasks.signer.kid]
    assert all("d" not in k for k in keys)


async def test_wait_for_unknown_task_raises(stack: Stack) -> None:
    with pytest.raises(KeyError):
        await stack.local_tasks.wait_for_task(f"{PARENT}/tasks/never-created")


@pytest.mark.parametrize(
    ("retry_number", "expected_s"),
    [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 240), (7, 300), (20, 300)],
)
def test_backoff_doubles_then_grows_linearly(retry_number: int, expected_s: float) -> None:
    settings = QueueSettings(min_backoff_s=10, max_backoff_s=300, max_doublings=3)

    assert backoff_s(retry_number, settings) == expected_s


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.test", ""])
def test_non_loopback_host_rejected(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(host)


def test_queue_settings_validated() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        QueueSettings(max_attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        QueueSettings(min_backoff_s=2, max_backoff_s=1)
