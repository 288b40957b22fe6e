"""Errors raised by the job store.

JobStoreError
├── JobStoreUnavailable      Redis could not be reached or timed out
├── JobNotFound              no job with that id
├── IdempotencyConflict      key reused with other parameters
├── JobFinished              the job already completed or failed
├── LeaseHeld                another delivery is running the job
└── LeaseLost                the caller's lease was taken over
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from redis import exceptions as redis_errors

from jobstore.events import JobStatus

T = TypeVar("T")

# Exceptions redis-py raises when the server is down, unreachable, timing out
# or still loading its data after a restart (BusyLoadingError is a ConnectionError).
REDIS_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


class JobStoreError(Exception):
    """Base class of job store errors."""


class JobStoreUnavailable(JobStoreError):
    """Redis could not be reached, timed out or is still loading its data."""


class JobNotFound(JobStoreError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class IdempotencyConflict(JobStoreError):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"the Idempotency-Key was already used for job {job_id} with other parameters"
        )
        self.job_id = job_id


class JobFinished(JobStoreError):
    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(f"job {job_id} is already {status.value}")
        self.job_id = job_id
        self.status = status


class JobNotFinished(JobStoreError):
    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(f"job {job_id} is still {status.value}")
        self.job_id = job_id
        self.status = status


class LeaseHeld(JobStoreError):
    def __init__(self, job_id: str, lease_left_ms: int) -> None:
        super().__init__(f"job {job_id} is running under another lease for {lease_left_ms} ms")
        self.job_id = job_id
        self.lease_left_ms = lease_left_ms


class LeaseLost(JobStoreError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"the lease on job {job_id} was lost to another delivery")
        self.job_id = job_id


async def guard_unavailable(call: Awaitable[T]) -> T:
    """Await a Redis call, turning connection failures into JobStoreUnavailable."""
    try:
        return await call
    except REDIS_UNAVAILABLE as exc:
        raise JobStoreUnavailable(f"Redis is unavailable: {exc}") from exc
