"""Every Redis key the job store uses.

A job's own keys share the hash tag `{job:<id>}`. The cross-job keys (the
global event stream and the job indexes) are written by the same Lua script
as the job's keys, which Redis allows on a single node (Memorystore Basic
or Standard tier). On a Redis Cluster that script would be rejected with
CROSSSLOT; docs/architecture.md describes the sharded layout that would
fix it.
"""

from __future__ import annotations

from jobstore.events import JobStatus

# Every event of every job, for dashboards; entry IDs are Redis-assigned times.
GLOBAL_EVENTS = "ingest:events"
# Sorted set of all job ids, scored by creation time in ms since the epoch.
JOBS_BY_CREATION = "ingest:jobs:created"


def events_key(job_id: str) -> str:
    """Stream of the job's events, with entry IDs `0-1`, `0-2`, ... (the version)."""
    return f"{{job:{job_id}}}:events"


def state_key(job_id: str) -> str:
    """Hash with the job's projection snapshot, version, status and lease."""
    return f"{{job:{job_id}}}:state"


def status_index_key(status: JobStatus) -> str:
    """Sorted set of the ids of jobs now in `status`, scored by creation time in ms."""
    return f"ingest:jobs:status:{status.value}"


def legacy_job_key(job_id: str) -> str:
    """Hash in which the Celery-era system kept a job's state (read only)."""
    return f"job:{job_id}"


def append_keys(job_id: str) -> list[str]:
    """KEYS of the append script, in the order it expects them."""
    return [
        events_key(job_id),
        state_key(job_id),
        GLOBAL_EVENTS,
        JOBS_BY_CREATION,
        *(status_index_key(status) for status in JobStatus),
    ]


# JSON document with the last day written per ticker, read and written by the
# ingestion run through app.watermarks. It is defined here with every other key.
WATERMARK = "ingest:watermark"
