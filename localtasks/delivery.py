"""Push a task to its URL as Cloud Tasks does, retrying until 2xx or max_attempts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from google.cloud import tasks_v2

from localtasks.models import Attempt, LocalTask, QueueSettings, TaskState
from localtasks.signing import TokenSigner

logger = logging.getLogger(__name__)

# Cloud Tasks sets these itself and drops any value the task brings along.
RESERVED_HEADER_PREFIXES = ("x-cloudtasks-", "x-google-", "x-appengine-")
REPLACED_HEADERS = frozenset({"host", "content-length", "user-agent"})
USER_AGENT = "Google-Cloud-Tasks"
DEFAULT_DISPATCH_DEADLINE_S = 600.0
# Cloud Tasks documents Retry-After handling for these statuses. Any other
# status gets the queue backoff here, whatever Retry-After it sends.
RETRY_AFTER_STATUSES = frozenset({429, 503})

Sleep = Callable[[float], Awaitable[None]]


class Deliverer:
    """Runs the attempts of one task after another until it is delivered or gives up."""

    def __init__(
        self,
        http_client: httpx.AsyncClient,
        signer: TokenSigner,
        settings: QueueSettings,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http_client = http_client
        self._signer = signer
        self._settings = settings
        self._sleep = sleep

    async def run(self, local_task: LocalTask) -> None:
        await self._wait_for_schedule_time(local_task.task)

        for number in range(1, self._settings.max_attempts + 1):
            attempt = await self._attempt(local_task, number)
            local_task.attempts.append(attempt)
            _log_attempt(local_task, attempt)

            if attempt.succeeded:
                local_task.finish(TaskState.DELIVERED)
                return
            if number == self._settings.max_attempts:
                break

            attempt.retry_delay_s = self._retry_delay_s(number, attempt)
            await self._sleep(attempt.retry_delay_s)

        logger.warning(
            "task gave up after max_attempts",
            extra={
                "task_name": local_task.name,
                "max_attempts": self._settings.max_attempts,
            },
        )
        local_task.finish(TaskState.GAVE_UP)

    async def _wait_for_schedule_time(self, task: tasks_v2.Task) -> None:
        if "schedule_time" not in task:
            return
        delay_s = (task.schedule_time - datetime.now(UTC)).total_seconds()
        if delay_s > 0:
            await self._sleep(delay_s)

    async def _attempt(self, local_task: LocalTask, number: int) -> Attempt:
        http_request = local_task.task.http_request
        method = tasks_v2.HttpMethod(http_request.http_method or tasks_v2.HttpMethod.POST).name
        attempt = Attempt(
            number=number,
            url=http_request.url,
            method=method,
            headers=self._headers(local_task, number),
            body=http_request.body,
            timeout_s=self._attempt_timeout_s(local_task.task),
        )

        try:
            async with asyncio.timeout(attempt.timeout_s):
                response = await self._http_client.request(
                    method, attempt.url, headers=attempt.headers, content=attempt.body
                )
        except TimeoutError:
            attempt.error = "deadline exceeded"
        except httpx.HTTPError as exc:
            attempt.error = f"request failed: {type(exc).__name__}: {exc}"
        else:
            attempt.status_code = response.status_code
            attempt.retry_after_s = _retry_after_s(response)
        return attempt

    def _attempt_timeout_s(self, task: tasks_v2.Task) -> float:
        timeout_s = DEFAULT_DISPATCH_DEADLINE_S
        if "dispatch_deadline" in task:
            timeout_s = task.dispatch_deadline.total_seconds()
        cap_s = self._settings.max_attempt_timeout_s
        return timeout_s if cap_s is None else min(timeout_s, cap_s)

    def _headers(self, local_task: LocalTask, number: int) -> dict[str, str]:
        http_request = local_task.task.http_request
        headers = {
            name: value
            for name, value in http_request.headers.items()
            if not _is_reserved_header(name)
        }
        headers["User-Agent"] = USER_AGENT
        if http_request.body and not any(n.lower() == "content-type" for n in headers):
            headers["Content-Type"] = "application/octet-stream"

        headers.update(_task_headers(local_task, number))
        if "oidc_token" in http_request:
            token = self._signer.sign_id_token(
                _oidc_audience(http_request),
                http_request.oidc_token.service_account_email,
            )
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _retry_delay_s(self, number: int, attempt: Attempt) -> float:
        delay_s = backoff_s(number, self._settings)
        if attempt.status_code in RETRY_AFTER_STATUSES and attempt.retry_after_s is not None:
            delay_s = max(delay_s, attempt.retry_after_s)
        return delay_s


def backoff_s(retry_number: int, settings: QueueSettings) -> float:
    """Return the delay before retry `retry_number` (1 for the first retry).

    Cloud Tasks starts at min_backoff, doubles max_doublings times, then grows
    linearly by min_backoff * 2**max_doublings, capped at max_backoff.
    """
    doublings = min(retry_number - 1, settings.max_doublings)
    delay_s = settings.min_backoff_s * 2**doublings
    linear_steps = retry_number - 1 - settings.max_doublings
    if linear_steps > 0:
        delay_s += linear_steps * settings.min_backoff_s * 2**settings.max_doublings
    return min(delay_s, settings.max_backoff_s)


def _task_headers(local_task: LocalTask, number: int) -> dict[str, str]:
    previous = local_task.attempts[-1] if local_task.attempts else None
    # Responses with a 5xx status do not count as executions in Cloud Tasks.
    executions = sum(
        1 for a in local_task.attempts if a.status_code is not None and a.status_code < 500
    )
    headers = {
        "X-CloudTasks-QueueName": local_task.queue_id,
        "X-CloudTasks-TaskName": local_task.task_id,
        "X-CloudTasks-TaskRetryCount": str(number - 1),
        "X-CloudTasks-TaskExecutionCount": str(executions),
        "X-CloudTasks-TaskETA": f"{_eta_s(local_task.task):.6f}",
    }
    if previous is not None:
        if previous.status_code is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(previous.status_code)
        headers["X-CloudTasks-TaskRetryReason"] = _retry_reason(previous)
    return headers


def _retry_reason(previous: Attempt) -> str:
    # NOTE: Cloud Tasks does not document the wording of this header. These
    # values are the local server's own.
    if previous.status_code is not None:
        return f"HTTP status {previous.status_code}"
    return previous.error or "unknown"


def _eta_s(task: tasks_v2.Task) -> float:
    if "schedule_time" in task:
        return task.schedule_time.timestamp()
    return task.create_time.timestamp()


def _oidc_audience(http_request: tasks_v2.HttpRequest) -> str:
    # Cloud Tasks uses the full target URL, query included, when audience is empty.
    return http_request.oidc_token.audience or http_request.url


def _is_reserved_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in REPLACED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES)


def _retry_after_s(response: httpx.Response) -> float | None:
    """Return the Retry-After delay in seconds, from delta-seconds or an HTTP-date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _log_attempt(local_task: LocalTask, attempt: Attempt) -> None:
    logger.info(
        "task attempt finished",
        extra={
            "task_name": local_task.name,
            "attempt": attempt.number,
            "status_code": attempt.status_code,
            "error": attempt.error,
        },
    )
