"""Validation of query parameters and of the Last-Event-ID header.

Each parser raises a 422 ApiError whose `field` names the parameter, with
a message that shows the rejected value and the expected form.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from app.errors import ApiError
from jobstore.events import JobStatus

# IDs of a job's own stream are `0-<version>`, versions counting from 1.
JOB_EVENT_ID_PATTERN = re.compile(r"^0-([0-9]{1,18})$")
# IDs of the global stream are `<ms since the epoch>-<sequence>`, as Redis assigns them.
# Both parts are unsigned 64-bit in Redis; 15 and 18 digits stay well inside that.
GLOBAL_EVENT_ID_PATTERN = re.compile(r"^[0-9]{1,15}-[0-9]{1,18}$")
LIMIT_PATTERN = re.compile(r"^[0-9]{1,9}$")
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_job_event_id(value: str, name: str, *, allow_start: bool) -> int:
    """Return the version in a job stream ID `0-N`.

    `0-0` (before the first event) is accepted only when `allow_start` is set.
    """
    match = JOB_EVENT_ID_PATTERN.fullmatch(value)
    lowest = 0 if allow_start else 1
    if match is None or int(match[1]) < lowest:
        raise ApiError(
            422,
            f"{name} {value!r} is invalid: expected an event id 0-N with N >= {lowest}",
            field=name,
        )
    return int(match[1])


def parse_global_event_id(value: str, name: str) -> str:
    """Return a global stream ID such as `1733412345678-0` unchanged once it is valid."""
    if not GLOBAL_EVENT_ID_PATTERN.fullmatch(value):
        raise ApiError(
            422,
            f"{name} {value!r} is invalid: expected a stream entry id such as 1733412345678-0",
            field=name,
        )
    return value


def parse_limit(value: str | None, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not LIMIT_PATTERN.fullmatch(value) or not 1 <= int(value) <= maximum:
        raise ApiError(
            422, f"limit {value!r} is invalid: expected an integer 1 to {maximum}", field="limit"
        )
    return int(value)


def parse_status(value: str | None) -> JobStatus | None:
    if value is None:
        return None
    try:
        return JobStatus(value)
    except ValueError:
        expected = ", ".join(status.value for status in JobStatus)
        raise ApiError(
            422, f"status {value!r} is invalid: expected one of {expected}", field="status"
        ) from None


def parse_since(value: str | None) -> int | None:
    """Return the time in ms since the epoch of an ISO 8601 time or a YYYY-MM-DD date.

    A date means its midnight in UTC, and a time without an offset is UTC too.
    """
    if value is None:
        return None
    expected = "expected an ISO 8601 time such as 2026-12-04T15:35:21Z or a date YYYY-MM-DD"
    try:
        if DATE_PATTERN.fullmatch(value):
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"since {value!r} is invalid: {expected}", field="since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
