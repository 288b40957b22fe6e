"""A dispatcher that delivers jobs to the worker endpoint inside this process.

It posts each job to the app's own ASGI callable, so a delivery goes through
the same middleware, routing, authentication and worker code as a Cloud
Tasks push, and it retries a non-2xx response with backoff like a queue does.
It keeps no queue of its own. Instead, at startup it redelivers the jobs
that the store's status index shows as queued, and the reaper redelivers
running jobs whose lease ran out, so a job whose process died is picked
up by the next process.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from starlette.types import ASGIApp

from app.auth import LOCAL_DISPATCH_HEADER
from app.dispatch.base import WORKER_PATH, TaskPayload
from jobstore.events import JobStatus
from jobstore.store import JobStore

logger = logging.getLogger(__name__)


class LocalDispatcher:
    def __init__(
        self,
        app: ASGIApp,
        *,
        local_key: str,
        max_attempts: int,
        deadline_s: float = 1800.0,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        shutdown_grace_s: float = 8.0,
    ) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(
            transport=transport, base_url="http://local-dispatch", timeout=deadline_s
        )
        self._local_key = local_key
        self._max_attempts = max_attempts
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._shutdown_grace_s = shutdown_grace_s
        self._deliveries: set[asyncio.Task[None]] = set()

    async def dispatch(self, payload: TaskPayload) -> None:
        task = asyncio.create_task(self._deliver(payload), name=f"deliver-{payload.job_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def redeliver_queued(self, store: JobStore) -> int:
        """Dispatch every queued job again; return how many.

        Running jobs are the reaper's: it redelivers those whose lease ran
        out with attempts left and fails those on their last attempt. A
        finished job returns 2xx to a redelivery, so none runs twice.
        """
        count = 0
        async for view in store.all_jobs(JobStatus.QUEUED):
            await self.dispatch(TaskPayload(view.job_id))
            count += 1
        if count:
            logger.info("redelivering unfinished jobs", extra={"jobs": count})
        return count

    async def aclose(self) -> None:
        """Give running deliveries a grace period to finish, then cancel them."""
        if self._deliveries:
            _, pending = await asyncio.wait(self._deliveries, timeout=self._shutdown_grace_s)
            for task in pending:
                logger.warning(
                    "cancelling local delivery at shutdown", extra={"task": task.get_name()}
                )
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, payload: TaskPayload) -> None:
        eta = time.time()
        for retry_count in range(self._max_attempts):
            status, retry_after_s = await self._post(payload, retry_count, eta)
            if 200 <= status < 300:
                return
            if retry_count + 1 >= self._max_attempts:
                break
            delay_s = retry_after_s or min(
                self._max_backoff_s, self._min_backoff_s * 2**retry_count
            )
            logger.info(
                "local delivery will be retried",
                extra={"job_id": payload.job_id, "status": status, "delay_s": delay_s},
            )
            await asyncio.sleep(delay_s)
            eta = time.time()
        logger.error(
            "local delivery gave up after the last attempt",
            extra={"job_id": payload.job_id, "attempts": self._max_attempts},
        )

    async def _post(
        self, payload: TaskPayload, retry_count: int, eta: float
    ) -> tuple[int, float | None]:
        headers = {
            LOCAL_DISPATCH_HEADER: self._local_key,
            "X-CloudTasks-QueueName": "local",
            "X-CloudTasks-TaskName": payload.job_id,
            "X-CloudTasks-TaskRetryCount": str(retry_count),
            "X-CloudTasks-TaskExecutionCount": str(retry_count),
            "X-CloudTasks-TaskETA": f"{eta:.6f}",
        }
        try:
            response = await self._client.post(WORKER_PATH, json=payload.to_json(), headers=headers)
        except httpx.HTTPError as exc:
            logger.warning(
                "local delivery failed", extra={"job_id": payload.job_id, "error": str(exc)}
            )
            return 0, None
        return response.status_code, _retry_after_s(response)


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isascii() and value.isdigit() else None
