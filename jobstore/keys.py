"""Every Redis key the job store uses.

A job's keys share the hash tag `{job:<id>}`, so on a Redis Cluster they sit
in one slot and a single Lua script can check and write them together.
"""

from __future__ import annotations


def events_key(job_id: str) -> str:
    """Stream of the job's events, with entry IDs `0-1`, `0-2`, ... (the version)."""
    return f"{{job:{job_id}}}:events"


def state_key(job_id: str) -> str:
    """Hash with the job's projection snapshot, version, status and lease."""
    return f"{{job:{job_id}}}:state"
