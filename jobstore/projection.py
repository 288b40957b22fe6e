"""The fold of a job's events into the job JSON that n8n polls.

Pure functions with no I/O: the store keeps the folded view as a snapshot
next to the stream, and replaying any prefix of the stream through `fold`
gives the view as it was after that event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from jobstore.events import EventType, JobEvent, JobStatus, format_time, parse_time


@dataclass(frozen=True)
class JobView:
    """The job as the status endpoint shows it."""

    job_id: str
    status: JobStatus
    progress: int
    message: str
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the job JSON; its field names and types are a contract with n8n."""
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "progress": self.progress,
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "started_at": _format_optional(self.started_at),
            "finished_at": _format_optional(self.finished_at),
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobView:
        return cls(
            job_id=doc["job_id"],
            status=JobStatus(doc["status"]),
            progress=doc["progress"],
            message=doc["message"],
            result=doc["result"],
            error=doc["error"],
            created_at=parse_time(doc["created_at"]),
            updated_at=parse_time(doc["updated_at"]),
            started_at=_parse_optional(doc.get("started_at")),
            finished_at=_parse_optional(doc.get("finished_at")),
            attempts=doc.get("attempts", 0),
        )


def apply(view: JobView | None, job_id: str, event: JobEvent) -> JobView:
    """Return the view after one more event.

    Raises ValueError for an event that cannot follow the view, such as any
    event before `created`; the store never writes such a sequence.
    """
    if event.type is EventType.CREATED:
        if view is not None:
            raise ValueError(f"job {job_id} has a second created event")
        return JobView(
            job_id=job_id,
            status=JobStatus.QUEUED,
            progress=0,
            message="queued",
            result=None,
            error=None,
            created_at=event.at,
            updated_at=event.at,
        )
    if view is None:
        raise ValueError(f"job {job_id} has a {event.type} event before created")
    if event.type is EventType.RERUN_REQUESTED:
        # The link to the new job is history only: a finished job's JSON stays as it was.
        return view

    view = replace(view, updated_at=event.at)
    match event.type:
        case EventType.STARTED:
            return replace(
                view,
                status=JobStatus.RUNNING,
                progress=0,
                message=f"running (attempt {event.attempt})",
                started_at=event.at,
                attempts=event.attempt,
            )
        case EventType.PROGRESS:
            return replace(
                view, progress=int(event.data["percent"]), message=str(event.data["message"])
            )
        case EventType.ATTEMPT_FAILED:
            return replace(
                view,
                status=JobStatus.QUEUED,
                message=f"attempt {event.attempt} failed, waiting for a retry: "
                f"{event.data['error']}",
            )
        case EventType.COMPLETED:
            return replace(
                view,
                status=JobStatus.COMPLETED,
                progress=100,
                message="completed",
                result=event.data.get("result"),
                finished_at=event.at,
            )
        case EventType.FAILED:
            return replace(
                view,
                status=JobStatus.FAILED,
                message="failed",
                error=str(event.data["error"]),
                finished_at=event.at,
            )
    raise ValueError(f"unknown event type {event.type!r}")


def fold(job_id: str, events: Iterable[JobEvent]) -> JobView | None:
    """Fold events from the start of a job's stream; None when there are none."""
    view: JobView | None = None
    for event in events:
        view = apply(view, job_id, event)
    return view


def _format_optional(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def _parse_optional(text: str | None) -> datetime | None:
    return parse_time(text) if text is not None else None
