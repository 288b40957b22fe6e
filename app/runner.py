"""Running one delivery of a job: the ingestion in a thread, under a renewed lease.

The ingestion is blocking code, so it runs in a worker thread while the
event loop renews the job's lease every third of its length. Progress
events cross back into the loop. If the lease is lost to another delivery,
the next progress call raises LeaseLost inside the thread and stops it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.services import Services
from ingestion.daily import DailyParams, Progress, run_daily
from ingestion.errors import PermanentIngestionError, TransientIngestionError
from jobstore.errors import JobStoreUnavailable, LeaseLost
from jobstore.store import JobStore, Lease

logger = logging.getLogger(__name__)

# How long a progress event may wait for Redis before the run gives up on it.
PROGRESS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    """How one delivery ended, and the HTTP response the queue should get."""

    name: str
    status_code: int
    detail: str
    retry_after_s: int | None = None


async def run_job(
    services: Services,
    lease: Lease,
    params: dict[str, Any],
    *,
    attempt: int,
    delivery: dict[str, str],
) -> Outcome:
    store = services.store
    log_fields = {"job_id": lease.job_id, "attempt": attempt}
    logger.info("job started", extra=log_fields)
    try:
        result = await _run_with_heartbeat(services, lease, params)
        await store.complete(lease, result)
    except LeaseLost:
        logger.warning("job taken over by another delivery", extra=log_fields)
        return Outcome("superseded", 200, "another delivery took the job over")
    except JobStoreUnavailable as exc:
        logger.error(
            "job store unavailable during the run", extra={**log_fields, "error": str(exc)}
        )
        return Outcome(
            "store_unavailable", 503, str(exc), retry_after_s=services.settings.retry_after_s
        )
    except PermanentIngestionError as exc:
        return await _fail(store, lease, f"{exc}", delivery, log_fields)
    except TransientIngestionError as exc:
        return await _fail_or_retry(services, lease, str(exc), attempt, delivery, 503)
    except Exception as exc:
        logger.exception("job failed with an unexpected error", extra=log_fields)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
        return await _fail_or_retry(services, lease, error, attempt, delivery, 500)
    logger.info("job completed", extra=log_fields)
    return Outcome("completed", 200, "job completed")


async def _run_with_heartbeat(
    services: Services, lease: Lease, params: dict[str, Any]
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lease_lost = threading.Event()
    heartbeat = asyncio.create_task(_renew_until_cancelled(services.store, lease, lease_lost))

    def report(progress: Progress) -> None:
        if lease_lost.is_set():
            raise LeaseLost(lease.job_id)
        future = asyncio.run_coroutine_threadsafe(
            services.store.progress(lease, progress.percent, progress.message), loop
        )
        future.result(timeout=PROGRESS_TIMEOUT_S)

    daily_params = DailyParams(
        trading_day=date.fromisoformat(params["date"]) if params.get("date") else None,
        tickers=tuple(params["tickers"]) if params.get("tickers") else None,
    )
    try:
        result = await asyncio.to_thread(run_daily, daily_params, services.ingestion, report)
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
    if lease_lost.is_set():
        raise LeaseLost(lease.job_id)
    summary = result.to_dict()
    _require_some_ticker_done(summary)
    return summary


def _require_some_ticker_done(summary: dict[str, Any]) -> None:
    """Raise PermanentIngestionError when tickers were there to ingest but none succeeded.

    Such a run wrote nothing, and reporting it as completed would let an
    n8n workflow carry on as if the day's prices were in.
    """
    missing = summary["tickers_not_found"]
    failed = summary["tickers_failed"]
    if summary["tickers_done"] or not (missing or failed):
        return
    reasons = []
    if missing:
        reasons.append(f"no data found for {', '.join(missing)}")
    if failed:
        reasons.append(f"source failed for {', '.join(failed)}")
    raise PermanentIngestionError(f"no ticker was ingested: {'; '.join(reasons)}")


async def _renew_until_cancelled(store: JobStore, lease: Lease, lost: threading.Event) -> None:
    interval_s = store.lease_ms / 3000
    while True:
        await asyncio.sleep(interval_s)
        try:
            await store.renew(lease)
        except LeaseLost:
            lost.set()
            return
        except JobStoreUnavailable as exc:
            # The lease may lapse while Redis is down, which the next renewal detects.
            logger.warning(
                "lease renewal failed", extra={"job_id": lease.job_id, "error": str(exc)}
            )


async def _fail_or_retry(
    services: Services,
    lease: Lease,
    error: str,
    attempt: int,
    delivery: dict[str, str],
    status_code: int,
) -> Outcome:
    log_fields = {"job_id": lease.job_id, "attempt": attempt, "error": error}
    if attempt >= services.settings.task_max_attempts:
        return await _fail(
            services.store, lease, f"{error} (last of {attempt} attempts)", delivery, log_fields
        )
    logger.warning("job attempt failed; the queue will retry", extra=log_fields)
    try:
        await services.store.fail_attempt(lease, error, delivery=delivery)
    except LeaseLost:
        return Outcome("superseded", 200, "another delivery took the job over")
    return Outcome(
        "attempt_failed", status_code, error, retry_after_s=services.settings.retry_after_s
    )


async def _fail(
    store: JobStore, lease: Lease, error: str, delivery: dict[str, str], log_fields: dict[str, Any]
) -> Outcome:
    logger.error("job failed", extra={**log_fields, "error": error})
    try:
        await store.fail(lease.job_id, error, lease=lease, delivery=delivery)
    except LeaseLost:
        return Outcome("superseded", 200, "another delivery took the job over")
    return Outcome("failed", 200, error)
