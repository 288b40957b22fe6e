"""Check a CreateTaskRequest against the limits Cloud Tasks documents for HTTP tasks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import grpc
from google.cloud import tasks_v2

from localtasks.signing import LOOPBACK_HOSTS

QUEUE_PATH_PATTERN = re.compile(r"projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]{1,100}")
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,500}")

MIN_DISPATCH_DEADLINE = timedelta(seconds=15)
MAX_DISPATCH_DEADLINE = timedelta(minutes=30)
MAX_SCHEDULE_AHEAD = timedelta(days=30)
MAX_URL_LENGTH = 2083
# NOTE: Cloud Tasks documents "100KB" per task without saying whether that is
# 100,000 or 102,400 bytes. The larger value is used here.
MAX_TASK_SIZE_BYTES = 100 * 1024
BODY_METHODS = frozenset(
    {tasks_v2.HttpMethod.POST, tasks_v2.HttpMethod.PUT, tasks_v2.HttpMethod.PATCH}
)


class InvalidTaskError(Exception):
    """Raised for a request the service rejects, with the gRPC status to return."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> InvalidTaskError:
    return InvalidTaskError(grpc.StatusCode.INVALID_ARGUMENT, message)


def validate_create_request(request: tasks_v2.CreateTaskRequest, now: datetime) -> None:
    """Raise InvalidTaskError if Cloud Tasks would reject `request`."""
    if not QUEUE_PATH_PATTERN.fullmatch(request.parent):
        raise invalid(
            f"parent {request.parent!r} must be projects/PROJECT/locations/LOCATION/queues/QUEUE"
        )
    if "task" not in request:
        raise invalid("task is required")

    task = request.task
    _validate_name(task.name, request.parent)
    _validate_http_request(task)
    _validate_times(task, now)

    if len(tasks_v2.Task.serialize(task)) > MAX_TASK_SIZE_BYTES:
        raise invalid(f"task is larger than {MAX_TASK_SIZE_BYTES} bytes")


def _validate_name(name: str, parent: str) -> None:
    if not name:
        return
    queue_path, separator, task_id = name.rpartition("/tasks/")
    if not separator or not TASK_ID_PATTERN.fullmatch(task_id):
        raise invalid(
            f"task name {name!r} must be {parent}/tasks/TASK_ID with TASK_ID of "
            "letters, digits, '-' or '_', at most 500 characters"
        )
    if queue_path != parent:
        raise invalid(f"task name {name!r} is not in queue {parent!r}")


def _validate_http_request(task: tasks_v2.Task) -> None:
    if "app_engine_http_request" in task:
        raise InvalidTaskError(
            grpc.StatusCode.UNIMPLEMENTED, "the local server delivers HTTP tasks only"
        )
    if "http_request" not in task:
        raise invalid("task.http_request is required")

    http_request = task.http_request
    _validate_url(http_request.url)

    method = tasks_v2.HttpMethod(http_request.http_method or tasks_v2.HttpMethod.POST)
    if http_request.body and method not in BODY_METHODS:
        raise invalid(f"a body is allowed only with POST, PUT or PATCH, not {method.name}")

    if "oauth_token" in http_request:
        raise InvalidTaskError(
            grpc.StatusCode.UNIMPLEMENTED, "the local server signs OIDC tokens only"
        )
    if "oidc_token" in http_request and not http_request.oidc_token.service_account_email:
        raise invalid("oidc_token.service_account_email is required")


def _validate_url(url: str) -> None:
    if not url:
        raise invalid("http_request.url is required")
    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"http_request.url is longer than {MAX_URL_LENGTH} characters")

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"http_request.url {url!r} must be an absolute http(s) URL")
    # A local rule, not a Cloud Tasks one: this server pushes to this machine only.
    if parts.hostname not in LOOPBACK_HOSTS:
        raise invalid(f"the local server pushes to loopback addresses only, got {url!r}")


def _validate_times(task: tasks_v2.Task, now: datetime) -> None:
    if "dispatch_deadline" in task:
        deadline = task.dispatch_deadline
        if not MIN_DISPATCH_DEADLINE <= deadline <= MAX_DISPATCH_DEADLINE:
            raise invalid(
                f"dispatch_deadline must be between 15s and 30m, got {deadline.total_seconds()}s"
            )
    if "schedule_time" in task:
        schedule_time = task.schedule_time.astimezone(UTC)
        if schedule_time > now + MAX_SCHEDULE_AHEAD:
            raise invalid("schedule_time must be at most 30 days ahead")
