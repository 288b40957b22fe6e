"""The Starlette application and its lifespan.

Serve it with `uvicorn app.main:create_app --factory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator

import httpx
from google.cloud import tasks_v2
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.dispatch.base import Dispatcher, TaskPayload
from app.dispatch.cloud_tasks import CloudTasksConfig, CloudTasksDispatcher
from app.dispatch.local import LocalDispatcher
from app.errors import EXCEPTION_HANDLERS
from app.live import LiveStreams
from app.logs import TraceMiddleware, configure_logging
from app.oidc import OidcVerifier, SignatureMode
from app.reaper import Reaper
from app.routes import dashboard, history, jobs, streams, worker
from app.services import Services
from app.settings import Settings
from app.watermarks import RedisWatermarkStorage
from ingestion.config import InfluxTarget, IngestionConfig
from ingestion.watermark import WatermarkStorage
from jobstore.embedded import EmbeddedRedis
from jobstore.errors import JobStoreUnavailable
from jobstore.store import JobStore, Retention
from localtasks import local_tasks_client

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; without settings, read them from the environment."""
    if settings is None:
        settings = Settings.from_env(os.environ)
        configure_logging(settings.log_level, settings.cloud_tasks.project or None)
    app = Starlette(
        routes=[
            *jobs.routes,
            *history.routes,
            *streams.routes,
            *dashboard.routes,
            *worker.routes,
            Route("/healthz", healthz),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[Middleware(TraceMiddleware)],
        lifespan=_lifespan(settings),
    )
    return app


async def healthz(request: Request) -> Response:
    """Report whether the service can reach its job store; 503 when Redis is down."""
    services: Services = request.app.state.services
    await services.store.ping()
    return JSONResponse({"status": "ok", "redis": "ok"})


def _lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            redis_url = _redis_url(settings, stack)
            redis = connect_redis(redis_url)
            stack.push_async_callback(redis.aclose)
            # gRPC and httpx clients bind to the running event loop, so they
            # are created here and not at import time.
            http_client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
            watermarks = RedisWatermarkStorage(redis_url)
            stack.callback(watermarks.close)
            local_key = secrets.token_urlsafe(32)
            dispatcher = _dispatcher(app, settings, local_key, stack)
            stack.push_async_callback(dispatcher.aclose)
            live = LiveStreams(redis_url, max_streams=settings.sse_max_streams)
            stack.push_async_callback(live.aclose)
            store = JobStore(
                redis, lease_ms=settings.lease_s * 1000, retention=_retention(settings)
            )
            app.state.services = Services(
                settings=settings,
                store=store,
                dispatcher=dispatcher,
                ingestion=ingestion_config(settings, watermarks),
                local_dispatch_key=local_key,
                oidc_verifier=_oidc_verifier(settings, http_client),
                live=live,
            )
            logger.info("service started", extra={"cloud_tasks": settings.use_cloud_tasks})
            reaper = _reaper(settings, store, dispatcher)
            if isinstance(dispatcher, LocalDispatcher):
                await _recover_local_jobs(dispatcher, reaper, store)
            sweeps = asyncio.create_task(reaper.run(_sweep_s(settings)))
            stack.callback(sweeps.cancel)
            yield
        logger.info("service stopped")

    return lifespan


def _reaper(settings: Settings, store: JobStore, dispatcher: Dispatcher) -> Reaper:
    redeliver = None
    if isinstance(dispatcher, LocalDispatcher):

        async def redeliver(job_id: str) -> None:
            await dispatcher.dispatch(TaskPayload(job_id))

    return Reaper(
        store,
        max_attempts=settings.task_max_attempts,
        abandoned_after_s=settings.abandoned_job_s,
        redeliver=redeliver,
    )


def _sweep_s(settings: Settings) -> float:
    # Twice per lease: an abandoned job is found soon after its lease runs out.
    return max(2.5, settings.lease_s / 2)


async def _recover_local_jobs(dispatcher: LocalDispatcher, reaper: Reaper, store: JobStore) -> None:
    """Pick up the jobs a dead process left, as no queue will redeliver them.

    The reaper's sweep comes first, so a job on its last attempt is failed
    instead of being delivered again.
    """
    try:
        await reaper.sweep()
        await dispatcher.redeliver_queued(store)
    except JobStoreUnavailable as exc:
        logger.error("unfinished jobs not recovered at startup", extra={"error": str(exc)})


def _redis_url(settings: Settings, stack: contextlib.AsyncExitStack) -> str:
    if settings.redis_url is not None:
        return settings.redis_url
    embedded = EmbeddedRedis(settings.embedded_redis_dir)
    url = embedded.start()
    stack.callback(embedded.stop)
    return url


def connect_redis(url: str) -> Redis:
    """Open a client that fails fast, so an outage becomes a 503 within a second or two.

    Retrying is safe because every append carries its own idempotency key.
    """
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        health_check_interval=30,
    )


def ingestion_config(
    settings: Settings, watermark_storage: WatermarkStorage | None = None
) -> IngestionConfig:
    """Build the ingestion config; the watermark storage is used only with InfluxDB.

    With the file target the watermark stays in a file beside the points
    file, so deleting the state directory resets both together.
    """
    if settings.influx_url is None:
        return IngestionConfig(
            market_data_dir=settings.market_data_dir, influx=None, points_file=settings.points_file
        )
    influx = InfluxTarget(
        url=settings.influx_url,
        token=settings.influx_token,
        org=settings.influx_org,
        bucket=settings.influx_bucket,
    )
    return IngestionConfig(
        market_data_dir=settings.market_data_dir,
        influx=influx,
        points_file=settings.points_file,
        watermark_storage=watermark_storage,
    )


def _retention(settings: Settings) -> Retention:
    return Retention(
        completed_s=settings.completed_job_ttl_s,
        failed_s=settings.failed_job_ttl_s,
        global_stream_s=settings.event_stream_ttl_s,
    )


def _dispatcher(
    app: Starlette, settings: Settings, local_key: str, stack: contextlib.AsyncExitStack
) -> Dispatcher:
    if not settings.use_cloud_tasks:
        return LocalDispatcher(app, local_key=local_key, max_attempts=settings.task_max_attempts)

    tasks = settings.cloud_tasks
    if tasks.emulator_host is not None:
        client = local_tasks_client(tasks.emulator_host)
    else:
        client = tasks_v2.CloudTasksAsyncClient()
    stack.push_async_callback(client.transport.close)
    assert tasks.service_account is not None  # Settings checks it with USE_CLOUD_TASKS=true
    config = CloudTasksConfig(
        project=tasks.project,
        worker_base_url=tasks.worker_base_url,
        service_account_email=tasks.service_account,
        oidc_audience=tasks.oidc_audience,
        location=tasks.location,
        queue=tasks.queue,
        dispatch_deadline_s=tasks.deadline_s,
    )
    return CloudTasksDispatcher(client, config)


def _oidc_verifier(settings: Settings, http_client: httpx.AsyncClient) -> OidcVerifier | None:
    tasks = settings.cloud_tasks
    if tasks.service_account is None:
        return None
    mode = SignatureMode.VERIFY if tasks.verify_signature else SignatureMode.CLOUD_RUN_VERIFIED
    return OidcVerifier(
        tasks.oidc_audience,
        tasks.service_account,
        http_client,
        jwks_url=tasks.jwks_url,
        mode=mode,
    )
