"""Test keys and tokens shaped like the ID tokens Google issues for Cloud Tasks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

JWKS_URL = "https://jwks.example.test/oauth2/v3/certs"
AUDIENCE = "https://kaboom-ingest.example.test"
SERVICE_ACCOUNT = "tasks-invoker@kaboom-test.iam.gserviceaccount.com"
ISSUER = "https://accounts.google.com"


@dataclass
class SigningKey:
    kid: str
    key: RSAKey

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        return cls(kid=kid, key=RSAKey.generate_key(2048))

    def public_jwk(self) -> dict[str, Any]:
        return {
            **self.key.as_dict(private=False),
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
        }

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        header = {"alg": "RS256", "kid": kid or self.kid}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])


def id_token_claims(
    *, iat_offset_s: int = 0, exp_offset_s: int = 3600, **overrides: Any
) -> dict[str, Any]:
    """Return valid claims, with iat and exp relative to now and `overrides` applied."""
    now_s = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "sub": "104857600000000000001",
        "azp": "104857600000000000001",
        "iat": now_s + iat_offset_s,
        "exp": now_s + exp_offset_s,
    }
    claims.update(overrides)
    return claims


def jwks_response(*keys: SigningKey, max_age_s: int = 3600) -> httpx.Response:
    return httpx.Response(
        200,
        json={"keys": [key.public_jwk() for key in keys]},
        headers={"Cache-Control": f"public, max-age={max_age_s}, must-revalidate"},
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    """Build a token with `alg: none` and an empty signature."""
    return f"{b64url_json({'alg': 'none', 'kid': kid})}.{b64url_json(claims)}."


def hs256_token(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    """Build an HS256 token keyed with `secret`, as in the key confusion attack."""
    signing_input = f"{b64url_json({'alg': 'HS256', 'kid': kid})}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def strip_signature(token: str) -> str:
    """Replace the signature the way Cloud Run does after its own check."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"


class FakeMonotonicClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
