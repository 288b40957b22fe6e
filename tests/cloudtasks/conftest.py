from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

import httpx
import pytest
from google.cloud import tasks_v2

from app.dispatch.cloud_tasks import CloudTasksConfig, CloudTasksDispatcher
from app.oidc import OidcVerifier
from localtasks import LocalCloudTasks, QueueSettings, local_tasks_client
from tests.cloudtasks.worker import RecordingWorker, serve

SERVICE_ACCOUNT = "ingest-tasks@kaboom-test.iam.gserviceaccount.com"

FAST_QUEUE = QueueSettings(max_attempts=3, min_backoff_s=0.01, max_backoff_s=0.05)


@dataclass
class Stack:
    """The local Cloud Tasks server, a worker app behind uvicorn, and a dispatcher."""

    local_tasks: LocalCloudTasks
    worker: RecordingWorker
    worker_base_url: str
    client: tasks_v2.CloudTasksAsyncClient
    config: CloudTasksConfig
    dispatcher: CloudTasksDispatcher


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    """Return a factory that starts a stack; everything stops at test teardown."""
    async with AsyncExitStack() as exit_stack:

        async def factory(
            settings: QueueSettings = FAST_QUEUE, **config_overrides: object
        ) -> Stack:
            local_tasks = LocalCloudTasks(settings)
            await local_tasks.start()
            exit_stack.push_async_callback(local_tasks.stop)

            http_client = await exit_stack.enter_async_context(httpx.AsyncClient(trust_env=False))
            # The worker's audience is its own base URL, known only once it listens.
            worker = RecordingWorker()
            base_url = await exit_stack.enter_async_context(serve(worker.app))
            worker.verifier = OidcVerifier(
                base_url, SERVICE_ACCOUNT, http_client, jwks_url=local_tasks.jwks_url
            )

            client = local_tasks_client(local_tasks.grpc_address)
            exit_stack.push_async_callback(client.transport.close)
            config = CloudTasksConfig(
                project="kaboom-test",
                worker_base_url=base_url,
                service_account_email=SERVICE_ACCOUNT,
                oidc_audience=base_url,
                dispatch_deadline_s=120,
                create_timeout_s=5.0,
                retry_initial_backoff_s=0.01,
                retry_max_backoff_s=0.05,
            )
            config = replace(config, **config_overrides)  # type: ignore[arg-type]
            dispatcher = CloudTasksDispatcher(client, config)
            return Stack(local_tasks, worker, base_url, client, config, dispatcher)

        yield factory


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()
