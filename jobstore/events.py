"""Job statuses and the events that move a job between them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Status values of the job JSON; n8n workflows compare these strings."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})


class EventType(StrEnum):
    """Kinds of entries in a job's event stream."""

    CREATED = "created"
    STARTED = "started"
    PROGRESS = "progress"
    # One delivery failed with a retryable error; the job waits for the next one.
    ATTEMPT_FAILED = "attempt_failed"
    COMPLETED = "completed"
    FAILED = "failed"
    # A finished job was re-run as a new job, whose id is in the event data.
    RERUN_REQUESTED = "rerun_requested"

    @property
    def is_terminal(self) -> bool:
        """Whether the event moves the job to a final status (completed or failed)."""
        return self in (EventType.COMPLETED, EventType.FAILED)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's stream.

    `id` is the stream entry ID (`0-<version>`) once the event is stored, and
    None before. `delivery` contains the task-queue headers of the delivery that
    caused the event, when there was one.
    """

    type: EventType
    at: datetime
    attempt: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    delivery: dict[str, str] | None = None
    id: str | None = None

    @property
    def version(self) -> int:
        """Position of the event in its job's stream, counting from 1."""
        if self.id is None:
            raise ValueError("an event has no version before it is stored")
        return int(self.id.split("-", 1)[1])

    def to_fields(self) -> dict[str, str]:
        fields = {
            "type": self.type.value,
            "at": format_time(self.at),
            "attempt": str(self.attempt),
            "data": json.dumps(self.data, separators=(",", ":"), sort_keys=True),
        }
        if self.delivery:
            fields["delivery"] = json.dumps(self.delivery, separators=(",", ":"), sort_keys=True)
        return fields

    def to_json(self) -> dict[str, Any]:
        """Return the event as the history and stream endpoints show it."""
        return {
            "id": self.id,
            "version": self.version,
            "type": self.type.value,
            "at": format_time(self.at),
            "attempt": self.attempt,
            "delivery": self.delivery,
            "data": self.data,
        }

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[str, str]) -> JobEvent:
        delivery = fields.get("delivery")
        return cls(
            type=EventType(fields["type"]),
            at=parse_time(fields["at"]),
            attempt=int(fields.get("attempt", "0")),
            data=json.loads(fields.get("data", "{}")),
            delivery=json.loads(delivery) if delivery else None,
            id=entry_id,
        )
