"""Sign OIDC tokens as Google does for Cloud Tasks and serve the public key as JWKS."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

logger = logging.getLogger(__name__)

GOOGLE_ISSUER = "https://accounts.google.com"
# Google's ID tokens for service accounts are valid for one hour.
TOKEN_LIFETIME_S = 3600

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass
class TokenSigner:
    """An RS256 key that signs ID tokens with Google's claims layout."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))
    kid: str = field(default_factory=lambda: f"local-{secrets.token_hex(8)}")
    issuer: str = GOOGLE_ISSUER

    def sign_id_token(self, audience: str, email: str, *, now_s: int | None = None) -> str:
        """Sign a token for `email` and `audience`, issued at `now_s` (default: now)."""
        issued_at_s = int(time.time()) if now_s is None else now_s
        subject = _numeric_subject(email)
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "azp": subject,
            "sub": subject,
            "email": email,
            "email_verified": True,
            "iat": issued_at_s,
            "exp": issued_at_s + TOKEN_LIFETIME_S,
        }
        header = {"alg": "RS256", "kid": self.kid}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}


def _numeric_subject(email: str) -> str:
    # Google puts the account's numeric unique id in `sub`. A digest of the
    # email gives a stable stand-in of the same shape.
    digest = hashlib.sha256(email.encode()).hexdigest()
    return str(int(digest[:16], 16))


class JwksServer:
    """Serves a TokenSigner's public key at `/oauth2/v3/certs` on a loopback port."""

    path = "/oauth2/v3/certs"

    def __init__(self, signer: TokenSigner, *, max_age_s: int = 3600) -> None:
        self._signer = signer
        self._max_age_s = max_age_s
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving and return the JWKS URL."""
        require_loopback(host)
        app = Starlette(routes=[Route(self.path, self._certs)])
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._serve_task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise RuntimeError("JWKS server stopped during startup")
            await asyncio.sleep(0.01)

        bound_port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{_url_host(host)}:{bound_port}{self.path}"
        logger.info("JWKS server started", extra={"jwks_url": self.url})
        return self.url

    async def stop(self) -> None:
        if self._server is None or self._serve_task is None:
            return
        self._server.should_exit = True
        await self._serve_task
        self._server = None
        self._serve_task = None

    async def _certs(self, request: Request) -> JSONResponse:
        headers = {"Cache-Control": f"public, max-age={self._max_age_s}"}
        return JSONResponse(self._signer.jwks(), headers=headers)


def require_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback address."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"local servers listen on loopback only, got host {host!r}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
