"""A worker app for end-to-end tests: verifies the OIDC token, records each push."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.dispatch.base import WORKER_PATH
from app.oidc import OidcError, OidcVerifier


@dataclass
class ScriptedResponse:
    status_code: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class ReceivedPush:
    headers: dict[str, str]
    body: Any
    claims: dict[str, Any] | None
    oidc_error: OidcError | None


class RecordingWorker:
    """Returns scripted responses to pushes, then 200 once the script runs out."""

    def __init__(self) -> None:
        self.verifier: OidcVerifier | None = None
        self.script: list[ScriptedResponse] = []
        self.received: list[ReceivedPush] = []
        self.app = Starlette(routes=[Route(WORKER_PATH, self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        assert self.verifier is not None, "set RecordingWorker.verifier before serving"
        raw = await request.body()
        push = ReceivedPush(
            headers=dict(request.headers),
            body=json.loads(raw),
            claims=None,
            oidc_error=None,
        )
        self.received.append(push)

        try:
            push.claims = await self.verifier.verify(request.headers.get("authorization"))
        except OidcError as exc:
            push.oidc_error = exc
            return JSONResponse({"error": exc.reason}, status_code=exc.status)

        scripted = self.script.pop(0) if self.script else ScriptedResponse()
        if scripted.delay_s:
            await asyncio.sleep(scripted.delay_s)
        return Response(status_code=scripted.status_code, headers=scripted.headers)


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port and yield its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    serve_task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            assert not serve_task.done(), "uvicorn stopped during startup"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serve_task
