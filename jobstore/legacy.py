"""Read-only access to jobs that the Celery-era system stored as `job:<id>` hashes.

n8n runs started before the cutover keep polling their job ids; the status
endpoint serves them from the old hash in the same JSON shape. Celery's
state names (PENDING, STARTED, SUCCESS, FAILURE, ...) and the old lower-case
status values are both understood.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jobstore.events import JobStatus, parse_time
from jobstore.projection import JobView

_STATUS_BY_STATE = {
    "pending": JobStatus.QUEUED,
    "received": JobStatus.QUEUED,
    "queued": JobStatus.QUEUED,
    "retry": JobStatus.QUEUED,
    "started": JobStatus.RUNNING,
    "progress": JobStatus.RUNNING,
    "running": JobStatus.RUNNING,
    "success": JobStatus.COMPLETED,
    "completed": JobStatus.COMPLETED,
    "failure": JobStatus.FAILED,
    "revoked": JobStatus.FAILED,
    "failed": JobStatus.FAILED,
}


class LegacyRecordError(ValueError):
    """The old hash lacks a field the job JSON needs, or a value cannot be read."""


def view_from_legacy(job_id: str, record: dict[str, str]) -> JobView:
    """Build the job view from an old `job:<id>` hash."""
    state = record.get("status", "").lower()
    if state not in _STATUS_BY_STATE:
        raise LegacyRecordError(f"job {job_id}: unknown legacy status {record.get('status')!r}")
    created_at = record.get("created_at")
    if not created_at:
        raise LegacyRecordError(f"job {job_id}: legacy record has no created_at")
    created = _time(job_id, "created_at", created_at)
    updated = (
        _time(job_id, "updated_at", record["updated_at"]) if record.get("updated_at") else created
    )
    return JobView(
        job_id=job_id,
        status=_STATUS_BY_STATE[state],
        progress=_progress(record.get("progress")),
        message=record.get("message", ""),
        result=_json_object(job_id, record.get("result")),
        error=record.get("error") or None,
        created_at=created,
        updated_at=updated,
    )


def _time(job_id: str, name: str, raw: str) -> datetime:
    try:
        moment = parse_time(raw)
    except ValueError:
        raise LegacyRecordError(f"job {job_id}: legacy {name} {raw!r} is not ISO 8601") from None
    # A time without an offset is taken as UTC, because format_time would
    # otherwise read it in the machine's local zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _progress(raw: str | None) -> int:
    try:
        return max(0, min(100, int(float(raw)))) if raw else 0
    except (ValueError, OverflowError):
        return 0


def _json_object(job_id: str, raw: str | None) -> dict[str, Any] | None:
    if not raw or raw in ("null", "None"):
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LegacyRecordError(f"job {job_id}: legacy result is not JSON: {exc}") from None
    return value if isinstance(value, dict) else {"value": value}
