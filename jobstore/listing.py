"""Listing jobs from the indexes that the append script keeps.

Jobs are listed newest first. A page cursor is `<created ms>:<job id>` of
the last job returned; the next page starts strictly after it, so ties on
creation time neither repeat nor skip a job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from redis.asyncio import Redis

from jobstore import keys
from jobstore.events import JobStatus
from jobstore.projection import JobView

# Index entries read per round while skipping jobs that have expired.
SCAN_BATCH = 200
# Creation time in ms: ASCII digits only (str.isdigit also accepts "²").
CURSOR_SCORE = re.compile(r"[0-9]{1,15}")


class InvalidCursor(ValueError):
    """The page cursor is not of the form `<created ms>:<job id>`."""


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobView]
    # Cursor of the next page, or None on the last page.
    next_cursor: str | None


async def list_jobs(
    redis: Redis,
    *,
    status: JobStatus | None,
    since_ms: int | None,
    limit: int,
    cursor: str | None,
) -> JobPage:
    """Return up to `limit` jobs created at or after `since_ms`, newest first.

    Index entries whose job has expired are removed as they are met.
    """
    index = keys.status_index_key(status) if status else keys.JOBS_BY_CREATION
    max_score, after_id = _parse_cursor(cursor)
    min_score = since_ms if since_ms is not None else "-inf"
    jobs: list[JobView] = []
    last: tuple[int, str] | None = None
    offset = 0
    while len(jobs) < limit:
        entries = await redis.zrevrangebyscore(
            index, max_score, min_score, start=offset, num=SCAN_BATCH, withscores=True
        )
        if not entries:
            return JobPage(jobs, None)
        offset += len(entries)
        candidates = [
            (job_id, int(score))
            for job_id, score in entries
            if not _at_or_before_cursor(int(score), job_id, max_score, after_id)
        ]
        views = await _read_views(redis, [job_id for job_id, _ in candidates])
        for (job_id, score), view in zip(candidates, views, strict=True):
            if view is None:
                await redis.zrem(index, job_id)
                # Later entries move up by one, so the next read must start earlier.
                offset -= 1
                continue
            jobs.append(view)
            last = (score, job_id)
            if len(jobs) == limit:
                break
    assert last is not None
    return JobPage(jobs, f"{last[0]}:{last[1]}")


def _parse_cursor(cursor: str | None) -> tuple[int | str, str | None]:
    if cursor is None:
        return "+inf", None
    score, _, job_id = cursor.partition(":")
    if not CURSOR_SCORE.fullmatch(score) or not job_id:
        raise InvalidCursor(f"cursor {cursor!r} is invalid: expected <created ms>:<job id>")
    return int(score), job_id


def _at_or_before_cursor(
    score: int, job_id: str, max_score: int | str, after_id: str | None
) -> bool:
    # Within one score, ZREVRANGEBYSCORE returns members in reverse
    # lexicographic order, so members >= the cursor's id were on earlier pages.
    return after_id is not None and score == max_score and job_id >= after_id


async def _read_views(redis: Redis, job_ids: list[str]) -> list[JobView | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.state_key(job_id), "view")
        docs = await pipe.execute()
    return [JobView.from_json(json.loads(doc)) if doc else None for doc in docs]
