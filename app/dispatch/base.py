"""The dispatcher interface shared by the local and the Cloud Tasks implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

WORKER_PATH = "/internal/ingest/run-daily"


@dataclass(frozen=True)
class TaskPayload:
    """Body of a delivery to the worker endpoint: the job id and the job's parameters."""

    job_id: str
    date: str | None = None
    tickers: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "date": self.date,
            "tickers": list(self.tickers) if self.tickers is not None else None,
        }


class DispatchError(Exception):
    """Raised when a job could not be handed to the queue after all retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Dispatcher(Protocol):
    """Hands a job to the worker endpoint, at least once.

    `dispatch` returns once the job is safely queued, not when it has run.
    Dispatching the same job twice must not create a second delivery chain
    where the queue can prevent it (Cloud Tasks task names); the worker's own
    guard covers the rest.
    """

    async def dispatch(self, payload: TaskPayload) -> None: ...

    async def aclose(self) -> None: ...
