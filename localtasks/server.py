"""A local Cloud Tasks server: the CreateTask gRPC method plus HTTP push delivery.

The real `google-cloud-tasks` client talks to it over an insecure loopback
channel. The service is registered with a generic handler that uses the
proto-plus message classes for (de)serialisation, so no generated servicer
code is needed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta

import grpc
import httpx
from google.cloud import tasks_v2

from localtasks.delivery import DEFAULT_DISPATCH_DEADLINE_S, Deliverer
from localtasks.models import LocalTask, QueueSettings, TaskState
from localtasks.signing import JwksServer, TokenSigner, require_loopback
from localtasks.validation import InvalidTaskError, validate_create_request

logger = logging.getLogger(__name__)

SERVICE_NAME = "google.cloud.tasks.v2.CloudTasks"


class LocalCloudTasks:
    """Accepts CreateTask calls and pushes each task to its loopback URL.

    Task names stay reserved for the server's lifetime, so a second CreateTask
    with the same name is rejected with ALREADY_EXISTS even after delivery.
    The real service keeps a name reserved for about an hour after the task
    ran or was deleted.
    """

    def __init__(
        self,
        settings: QueueSettings | None = None,
        *,
        signer: TokenSigner | None = None,
    ) -> None:
        self.settings = settings or QueueSettings()
        self.signer = signer or TokenSigner()
        self.tasks: dict[str, LocalTask] = {}
        # Every CreateTask request received, rejected ones included.
        self.create_requests: list[tasks_v2.CreateTaskRequest] = []
        self.grpc_address = ""
        self.jwks_url = ""

        self._injected_errors: list[tuple[grpc.StatusCode, str]] = []
        self._grpc_server: grpc.aio.Server | None = None
        self._jwks_server = JwksServer(self.signer, max_age_s=self.settings.jwks_max_age_s)
        self._http_client: httpx.AsyncClient | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    @property
    def issuer(self) -> str:
        return self.signer.issuer

    async def start(self, host: str = "127.0.0.1", grpc_port: int = 0, jwks_port: int = 0) -> None:
        """Start the gRPC and JWKS servers on `host`, a loopback address."""
        require_loopback(host)
        # trust_env=False keeps proxy variables from routing pushes off this machine.
        self._http_client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self.jwks_url = await self._jwks_server.start(host, jwks_port)

        self._grpc_server = grpc.aio.server()
        self._grpc_server.add_generic_rpc_handlers((self._service_handler(),))
        url_host = f"[{host}]" if ":" in host else host
        bound_port = self._grpc_server.add_insecure_port(f"{url_host}:{grpc_port}")
        await self._grpc_server.start()
        self.grpc_address = f"{url_host}:{bound_port}"
        logger.info(
            "local Cloud Tasks started",
            extra={"grpc_address": self.grpc_address, "jwks_url": self.jwks_url},
        )

    async def stop(self) -> None:
        """Stop accepting calls, cancel pending deliveries and stop both servers."""
        if self._grpc_server is not None:
            await self._grpc_server.stop(grace=None)
            self._grpc_server = None
        for delivery in list(self._deliveries):
            delivery.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await self._jwks_server.stop()
        if self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None
        logger.info("local Cloud Tasks stopped", extra={"grpc_address": self.grpc_address})

    def inject_create_error(
        self, code: grpc.StatusCode, count: int = 1, message: str = "injected failure"
    ) -> None:
        """Make the next `count` CreateTask calls fail with `code` before validation."""
        self._injected_errors.extend([(code, message)] * count)

    async def wait_for_task(self, name: str, timeout_s: float = 10.0) -> LocalTask:
        """Return the task once it is delivered or has given up.

        Raises KeyError for a name that was never created and TimeoutError when
        the task is still pending after `timeout_s`.
        """
        local_task = self.tasks.get(name)
        if local_task is None:
            raise KeyError(f"no task named {name!r} was created")
        async with asyncio.timeout(timeout_s):
            await local_task.finished.wait()
        return local_task

    def _service_handler(self) -> grpc.GenericRpcHandler:
        create_task = grpc.unary_unary_rpc_method_handler(
            self._create_task,
            request_deserializer=tasks_v2.CreateTaskRequest.deserialize,
            response_serializer=tasks_v2.Task.serialize,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"CreateTask": create_task})

    async def _create_task(
        self, request: tasks_v2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_v2.Task:
        self.create_requests.append(request)
        if self._injected_errors:
            code, message = self._injected_errors.pop(0)
            logger.info("CreateTask failed by injected error", extra={"code": code.name})
            await context.abort(code, message)

        now = datetime.now(UTC)
        try:
            validate_create_request(request, now)
        except InvalidTaskError as exc:
            logger.info(
                "CreateTask rejected",
                extra={"code": exc.code.name, "reason": exc.message},
            )
            await context.abort(exc.code, exc.message)

        task = _complete_task(request, now)
        if task.name in self.tasks:
            logger.info("CreateTask rejected: name exists", extra={"task_name": task.name})
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"task {task.name} already exists")

        self._enqueue(task)
        return _response_view(task, request.response_view)

    def _enqueue(self, task: tasks_v2.Task) -> None:
        queue_path, _, task_id = task.name.rpartition("/tasks/")
        local_task = LocalTask(task=task, queue_id=queue_path.rsplit("/", 1)[-1], task_id=task_id)
        self.tasks[task.name] = local_task

        delivery = asyncio.get_running_loop().create_task(self._deliver(local_task))
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)
        logger.info("task created", extra={"task_name": task.name})

    async def _deliver(self, local_task: LocalTask) -> None:
        assert self._http_client is not None
        deliverer = Deliverer(self._http_client, self.signer, self.settings)
        try:
            await deliverer.run(local_task)
        except Exception:
            # A bug in delivery must not leave waiters hanging on a pending task.
            logger.exception("task delivery failed", extra={"task_name": local_task.name})
            local_task.finish(TaskState.GAVE_UP)


def _complete_task(request: tasks_v2.CreateTaskRequest, now: datetime) -> tasks_v2.Task:
    """Fill in what Cloud Tasks sets on creation: name, times, deadline and method."""
    task = tasks_v2.Task(request.task)
    if not task.name:
        task.name = f"{request.parent}/tasks/{secrets.randbelow(10**19)}"
    task.create_time = now
    if "schedule_time" not in task:
        task.schedule_time = now
    if "dispatch_deadline" not in task:
        task.dispatch_deadline = timedelta(seconds=DEFAULT_DISPATCH_DEADLINE_S)
    if not task.http_request.http_method:
        # The proto-plus stubs type enum members as int.
        task.http_request.http_method = tasks_v2.HttpMethod.POST  # type: ignore[assignment]
    return task


def _response_view(task: tasks_v2.Task, view: tasks_v2.Task.View) -> tasks_v2.Task:
    # The default BASIC view leaves out the body, which can be large or sensitive.
    if view == tasks_v2.Task.View.FULL:
        return task
    response = tasks_v2.Task(task)
    response.http_request.body = b""
    response.view = tasks_v2.Task.View.BASIC  # type: ignore[assignment]
    return response
