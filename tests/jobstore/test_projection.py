"""The pure fold of events into the job view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobstore.events import EventType, JobEvent, JobStatus
from jobstore.projection import JobView, apply, fold

T0 = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


def event(kind: EventType, minutes: int, attempt: int = 1, **data: object) -> JobEvent:
    return JobEvent(kind, T0 + timedelta(minutes=minutes), attempt=attempt, data=dict(data))


HISTORY = [
    event(EventType.CREATED, 0, attempt=0, params={}),
    event(EventType.STARTED, 1),
    event(EventType.PROGRESS, 2, percent=50, message="7203.T done"),
    event(EventType.ATTEMPT_FAILED, 3, error="victoria-metrics unreachable"),
    event(EventType.STARTED, 4, attempt=2),
    event(EventType.FAILED, 5, attempt=2, error="still unreachable"),
    event(EventType.RERUN_REQUESTED, 6, attempt=2, rerun_job_id="new"),
]


def test_fold_of_each_prefix() -> None:
    expected = [
        (JobStatus.QUEUED, 0, None, 0),
        (JobStatus.RUNNING, 0, None, 1),
        (JobStatus.RUNNING, 50, None, 1),
        (JobStatus.QUEUED, 50, None, 1),
        (JobStatus.RUNNING, 0, None, 2),
        (JobStatus.FAILED, 0, "still unreachable", 2),
        (JobStatus.FAILED, 0, "still unreachable", 2),
    ]
    for length, (status, progress, error, attempts) in enumerate(expected, start=1):
        view = fold("job", HISTORY[:length])
        assert view is not None
        assert (view.status, view.progress, view.error, view.attempts) == (
            status,
            progress,
            error,
            attempts,
        ), f"after {length} events"


def test_rerun_link_leaves_view_unchanged() -> None:
    before = fold("job", HISTORY[:-1])
    after = fold("job", HISTORY)

    assert after == before


def test_attempt_failed_message_carries_error() -> None:
    view = fold("job", HISTORY[:4])

    assert view is not None
    assert "victoria-metrics unreachable" in view.message
    assert view.updated_at == T0 + timedelta(minutes=3)


def test_completed_sets_result_and_full_progress() -> None:
    view = fold("job", [*HISTORY[:3], event(EventType.COMPLETED, 9, result={"bars_written": 3})])

    assert view is not None
    assert view.status is JobStatus.COMPLETED
    assert view.progress == 100
    assert view.result == {"bars_written": 3}
    assert view.finished_at == T0 + timedelta(minutes=9)


def test_json_round_trip() -> None:
    view = fold("job", HISTORY)

    assert view is not None
    assert JobView.from_json(view.to_json()) == view


def test_event_before_created_is_rejected() -> None:
    with pytest.raises(ValueError, match="before created"):
        apply(None, "job", event(EventType.STARTED, 1))


def test_second_created_is_rejected() -> None:
    view = fold("job", HISTORY[:1])

    with pytest.raises(ValueError, match="second created"):
        apply(view, "job", event(EventType.CREATED, 1))


def test_fold_of_nothing_is_none() -> None:
    assert fold("job", []) is None
