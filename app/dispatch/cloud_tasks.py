"""Dispatch jobs as Cloud Tasks HTTP tasks that push to the worker endpoint."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass

from google.api_core import exceptions as core_exceptions
from google.api_core.retry import AsyncRetry, if_exception_type
from google.cloud import tasks_v2
from google.protobuf import duration_pb2

from app.dispatch.base import WORKER_PATH, DispatchError, TaskPayload

logger = logging.getLogger(__name__)

# Cloud Tasks accepts dispatch deadlines from 15 seconds to 30 minutes.
MIN_DISPATCH_DEADLINE_S = 15
MAX_DISPATCH_DEADLINE_S = 1800

# A task ID is letters, digits, hyphens and underscores, at most 500 characters.
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,500}")
TASK_ID_HASH_LENGTH = 8

# Maximum length of an API error message kept in a DispatchError reason.
MAX_REASON_MESSAGE_LENGTH = 300


@dataclass(frozen=True)
class CloudTasksConfig:
    """Queue, target and retry settings for CloudTasksDispatcher."""

    project: str
    worker_base_url: str
    service_account_email: str
    oidc_audience: str
    location: str = "asia-northeast1"
    queue: str = "ingest-jobs"
    dispatch_deadline_s: int = 600
    # Retry of the create_task call itself, not of the delivery.
    create_timeout_s: float = 30.0
    retry_initial_backoff_s: float = 0.5
    retry_max_backoff_s: float = 8.0

    def __post_init__(self) -> None:
        for field in ("project", "location", "queue", "service_account_email"):
            if not getattr(self, field):
                raise ValueError(f"CloudTasksConfig.{field} must not be empty")
        if not self.worker_base_url.startswith(("https://", "http://")):
            raise ValueError(
                f"worker_base_url must be an http(s) URL, got {self.worker_base_url!r}"
            )
        # Left empty, Cloud Tasks uses the full target URL as the audience,
        # which a worker that checks for the service URL then rejects.
        if not self.oidc_audience:
            raise ValueError("oidc_audience must be set, usually to the service URL")
        if not MIN_DISPATCH_DEADLINE_S <= self.dispatch_deadline_s <= MAX_DISPATCH_DEADLINE_S:
            raise ValueError(
                f"dispatch_deadline_s must be between {MIN_DISPATCH_DEADLINE_S} and "
                f"{MAX_DISPATCH_DEADLINE_S}, got {self.dispatch_deadline_s}"
            )

    @property
    def queue_path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/queues/{self.queue}"

    @property
    def worker_url(self) -> str:
        return self.worker_base_url.rstrip("/") + WORKER_PATH

    def task_name(self, job_id: str) -> str:
        return f"{self.queue_path}/tasks/{task_id_for_job(job_id)}"


def task_id_for_job(job_id: str) -> str:
    """Return the Cloud Tasks task ID for a job: `<8 hex of sha256(job_id)>-<job_id>`.

    The hash prefix spreads task names over the key space, because Cloud Tasks
    dispatches sequential or timestamp-like names more slowly.
    """
    task_id = f"{_job_hash(job_id)}-{job_id}"
    if not TASK_ID_PATTERN.fullmatch(task_id):
        raise ValueError(
            f"job id {job_id!r} cannot form a task ID: use only letters, digits, "
            "'-' and '_', at most 491 characters"
        )
    return task_id


def job_id_for_task(task: str) -> str:
    """Return the job id in a task ID or full task name, as `gcloud tasks` prints it.

    Raises ValueError when the text was not made by task_id_for_job.
    """
    task_id = task.rsplit("/tasks/", 1)[-1]
    prefix, separator, job_id = task_id.partition("-")
    if not separator or not job_id or prefix != _job_hash(job_id):
        raise ValueError(f"{task!r} is not a task ID made from a job id")
    return job_id


def _job_hash(job_id: str) -> str:
    return hashlib.sha256(job_id.encode()).hexdigest()[:TASK_ID_HASH_LENGTH]


class CloudTasksDispatcher:
    """Creates one named HTTP task per job in a Cloud Tasks queue.

    The task name comes from the job id, so dispatching a job again while its
    name is still reserved is rejected by Cloud Tasks with ALREADY_EXISTS,
    which counts as success here.
    """

    def __init__(self, client: tasks_v2.CloudTasksAsyncClient, config: CloudTasksConfig) -> None:
        self._client = client
        self._config = config

    def build_task(self, payload: TaskPayload) -> tasks_v2.Task:
        """Build the HTTP task that delivers `payload` to the worker endpoint."""
        config = self._config
        return tasks_v2.Task(
            name=config.task_name(payload.job_id),
            dispatch_deadline=duration_pb2.Duration(seconds=config.dispatch_deadline_s),
            http_request=tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST,
                url=config.worker_url,
                headers={"Content-Type": "application/json"},
                body=json.dumps(payload.to_json()).encode(),
                oidc_token=tasks_v2.OidcToken(
                    service_account_email=config.service_account_email,
                    audience=config.oidc_audience,
                ),
            ),
        )

    async def dispatch(self, payload: TaskPayload) -> None:
        """Create the job's task; raise DispatchError once retries are used up."""
        task = self.build_task(payload)
        log_fields = {"job_id": payload.job_id, "task_name": task.name}

        try:
            await self._client.create_task(
                parent=self._config.queue_path,
                task=task,
                retry=self._retry_policy(log_fields),
                timeout=self._config.create_timeout_s,
            )
        except core_exceptions.AlreadyExists:
            logger.info("task already exists; job was dispatched before", extra=log_fields)
            return
        except core_exceptions.RetryError as exc:
            reason = _describe_failure(exc.cause, retried=True)
            logger.error("create_task failed", extra={**log_fields, "reason": reason})
            raise DispatchError(reason) from exc
        except core_exceptions.GoogleAPICallError as exc:
            reason = _describe_failure(exc, retried=False)
            logger.error("create_task failed", extra={**log_fields, "reason": reason})
            raise DispatchError(reason) from exc

        logger.info("task created", extra=log_fields)

    async def aclose(self) -> None:
        """Do nothing: the app owns the client and closes it in its lifespan."""

    def _retry_policy(self, log_fields: dict[str, str]) -> AsyncRetry:
        # create_task has no default retry in google-cloud-tasks. UNAVAILABLE and
        # DEADLINE_EXCEEDED are transient. Retrying them cannot enqueue the job
        # twice because the task name is fixed.
        def log_retry(exc: Exception) -> None:
            logger.warning(
                "create_task failed, retrying",
                extra={**log_fields, "error": _status_text(exc)},
            )

        return AsyncRetry(
            predicate=if_exception_type(
                core_exceptions.ServiceUnavailable, core_exceptions.DeadlineExceeded
            ),
            initial=self._config.retry_initial_backoff_s,
            maximum=self._config.retry_max_backoff_s,
            multiplier=2.0,
            timeout=self._config.create_timeout_s,
            on_error=log_retry,
        )


def _describe_failure(exc: BaseException | None, *, retried: bool) -> str:
    status = _status_text(exc) if exc is not None else "no error recorded"
    if retried:
        return f"Cloud Tasks create_task failed after retries: {status}"
    return f"Cloud Tasks create_task failed: {status}"


def _status_text(exc: BaseException) -> str:
    if isinstance(exc, core_exceptions.GoogleAPICallError):
        code = exc.grpc_status_code.name if exc.grpc_status_code else str(exc.code)
        message = exc.message or ""
    else:
        code = type(exc).__name__
        message = str(exc)
    return f"{code}: {message[:MAX_REASON_MESSAGE_LENGTH]}"
