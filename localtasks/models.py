"""Queue settings and the records the local server keeps for each task."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from google.cloud import tasks_v2


@dataclass(frozen=True)
class QueueSettings:
    """Retry settings shared by all queues of a local server.

    The names follow the queue's RetryConfig in Cloud Tasks. `max_attempts`
    counts the first attempt. `max_attempt_timeout_s` is local only: it caps
    each attempt's timeout below the task's dispatch deadline, so tests can
    reach a timeout without waiting the 15 s minimum deadline.
    """

    max_attempts: int = 5
    min_backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    max_doublings: int = 16
    max_attempt_timeout_s: float | None = None
    jwks_max_age_s: int = 3600

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 <= self.min_backoff_s <= self.max_backoff_s:
            raise ValueError("backoffs must satisfy 0 <= min_backoff_s <= max_backoff_s")
        if self.max_doublings < 0:
            raise ValueError(f"max_doublings must not be negative, got {self.max_doublings}")


class TaskState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"


FINISHED_STATES = frozenset({TaskState.DELIVERED, TaskState.GAVE_UP})


@dataclass
class Attempt:
    """One push of a task to its URL: the request sent and the response received."""

    number: int
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    timeout_s: float
    status_code: int | None = None
    # Set when no response arrived: the attempt timed out or failed to connect.
    error: str | None = None
    # The response's Retry-After header in seconds, if it had a valid one.
    retry_after_s: float | None = None
    # Delay before the next attempt; None after the last one.
    retry_delay_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class LocalTask:
    """A created task, its delivery attempts and its state."""

    task: tasks_v2.Task
    queue_id: str
    task_id: str
    state: TaskState = TaskState.PENDING
    attempts: list[Attempt] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def name(self) -> str:
        return self.task.name

    def finish(self, state: TaskState) -> None:
        self.state = state
        self.finished.set()
