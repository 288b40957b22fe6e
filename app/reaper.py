"""Finding jobs that no delivery will finish, and finishing them.

Three kinds of delivery end leave a job behind. A worker killed on the
last attempt gets no retry. A queue that gives up while the job waits
deletes the task silently. With the local dispatcher, the process that
held the delivery may die. The reaper runs in every
instance; the store's guards make a sweep by two instances harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from jobstore.errors import JobFinished, JobNotFound, JobStoreUnavailable, LeaseHeld
from jobstore.events import JobStatus
from jobstore.projection import JobView
from jobstore.store import JobStore

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    failed: list[str] = field(default_factory=list)
    redelivered: list[str] = field(default_factory=list)


class Reaper:
    """Fails abandoned jobs and, with the local dispatcher, redelivers interrupted ones.

    - A running job whose lease has expired after its last allowed attempt
      is failed at once: no delivery will come.
    - A running job whose lease has expired earlier is handed to
      `redeliver` when given (local dispatcher); Cloud Tasks redelivers it
      by itself.
    - A job that has had no event for `abandoned_after_s`, while queued or
      running under an expired lease, is failed: the queue has given up.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        max_attempts: int,
        abandoned_after_s: int,
        redeliver: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._max_attempts = max_attempts
        self._abandoned_after_s = abandoned_after_s
        self._redeliver = redeliver

    async def run(self, interval_s: float) -> None:
        """Sweep every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except JobStoreUnavailable as exc:
                logger.warning("job sweep skipped: Redis unavailable", extra={"error": str(exc)})
            except Exception:
                # A Redis error such as OOM or READONLY must not end the sweeps for good.
                logger.exception("job sweep failed; the next one runs as planned")

    async def sweep(self) -> SweepResult:
        result = SweepResult()
        async for view in self._store.all_jobs(JobStatus.RUNNING):
            await self._check_running(view, result)
        async for view in self._store.all_jobs(JobStatus.QUEUED):
            idle_s = await self._store.seconds_since(view.updated_at)
            if idle_s >= self._abandoned_after_s:
                await self._fail(view, f"abandoned: queued with no delivery for {idle_s} s", result)
        return result

    async def _check_running(self, view: JobView, result: SweepResult) -> None:
        expired_ms = await self._store.lease_expired_ms(view.job_id)
        if expired_ms is None:
            return
        if view.attempts >= self._max_attempts:
            reason = (
                f"abandoned: attempt {view.attempts} of {self._max_attempts} stopped "
                "renewing its lease (worker stopped or dispatch deadline passed)"
            )
            await self._fail(view, reason, result)
        elif expired_ms >= self._abandoned_after_s * 1000:
            reason = f"abandoned: no delivery for {expired_ms // 1000} s after its lease expired"
            await self._fail(view, reason, result)
        elif self._redeliver is not None:
            await self._redeliver(view.job_id)
            result.redelivered.append(view.job_id)

    async def _fail(self, view: JobView, reason: str, result: SweepResult) -> None:
        try:
            await self._store.fail(view.job_id, reason)
        except (JobFinished, LeaseHeld, JobNotFound):
            return  # A delivery got there first, or the job expired meanwhile.
        logger.error("abandoned job failed", extra={"job_id": view.job_id, "error": reason})
        result.failed.append(view.job_id)
