"""Verify the OIDC bearer token that Cloud Tasks sends with each pushed request.

Errors, all carrying an HTTP `status` and a `reason` safe to return as JSON:

    OidcError            401 missing or invalid token, 403 wrong identity
    └── KeysUnavailableError   503 the signing keys could not be fetched

A 503 makes Cloud Tasks retry the delivery later, whereas a 401 would only
burn one of the queue's attempts on a problem that is not the caller's.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import RSAKey

from app.jwks import GOOGLE_JWKS_URL, JwksCache, JwksFetchError

logger = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})

# Cloud Run puts this text in place of the signature of a token it has
# already verified for an authenticated service.
SIGNATURE_REMOVED_BY_GOOGLE = "SIGNATURE_REMOVED_BY_GOOGLE"

# Google signs ID tokens with RS256 only. Accepting nothing else rules out
# `alg: none` and HS256 tokens that use the public key as the HMAC secret.
ALLOWED_ALGORITHM = "RS256"


class SignatureMode(StrEnum):
    """Choice of signature check for incoming tokens."""

    # Check the signature against the keys at `jwks_url`.
    VERIFY = "verify"
    # Accept a signature that Cloud Run replaced with SIGNATURE_REMOVED_BY_GOOGLE
    # after its own IAM check. Safe only when the service requires
    # authentication: anyone can send that text to a public service.
    CLOUD_RUN_VERIFIED = "cloud_run_verified"


class OidcError(Exception):
    """Raised when a pushed request's token is rejected."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class KeysUnavailableError(OidcError):
    """Raised when the signing keys cannot be fetched; the request should be retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(503, reason)


class OidcVerifier:
    """Checks a bearer token's signature, issuer, audience, times and identity.

    The identity is the service account that Cloud Tasks puts in the token: its
    `email` must equal `service_account_email` with `email_verified` true.
    """

    def __init__(
        self,
        audience: str,
        service_account_email: str,
        http_client: httpx.AsyncClient,
        *,
        jwks_url: str = GOOGLE_JWKS_URL,
        issuers: Iterable[str] = GOOGLE_ISSUERS,
        leeway_s: int = 10,
        mode: SignatureMode = SignatureMode.VERIFY,
        min_key_refetch_interval_s: float = 30.0,
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not audience:
            raise ValueError("audience must not be empty")
        if not service_account_email:
            raise ValueError("service_account_email must not be empty")

        self.audience = audience
        self.service_account_email = service_account_email
        self.issuers = frozenset(issuers)
        self.leeway_s = leeway_s
        self.mode = SignatureMode(mode)
        self._jwks = JwksCache(
            http_client,
            jwks_url,
            min_refetch_interval_s=min_key_refetch_interval_s,
            monotonic_clock=monotonic_clock,
        )

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """Return the claims of the token in an `Authorization` header value.

        Raises OidcError (401 or 403) when the token is rejected and
        KeysUnavailableError (503) when the signing keys cannot be fetched.
        """
        try:
            claims = await self._verify(authorization)
        except OidcError as exc:
            level = logging.WARNING if exc.status >= 500 else logging.INFO
            logger.log(
                level,
                "OIDC token rejected",
                extra={"status": exc.status, "reason": exc.reason},
            )
            raise
        return claims

    async def _verify(self, authorization: str | None) -> dict[str, Any]:
        token = parse_bearer(authorization)
        header, claims, signature = split_token(token)
        kid = _check_header(header)

        if signature == SIGNATURE_REMOVED_BY_GOOGLE:
            self._check_cloud_run_verified()
        else:
            key = await self._signing_key(kid)
            claims = _decode_signed(token, key)

        self._check_claims(claims)
        self._check_identity(claims)
        return claims

    def _check_cloud_run_verified(self) -> None:
        if self.mode is not SignatureMode.CLOUD_RUN_VERIFIED:
            raise OidcError(
                401,
                "token signature was removed by Cloud Run; use signature mode "
                "cloud_run_verified when Cloud Run checks the token",
            )

    async def _signing_key(self, kid: str) -> RSAKey:
        try:
            key = await self._jwks.get_key(kid)
        except JwksFetchError as exc:
            raise KeysUnavailableError("signing keys unavailable; retry later") from exc
        if key is None:
            raise OidcError(401, "token is signed with an unknown key id")
        return key

    def _check_claims(self, claims: dict[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway_s,
            iss={"essential": True, "values": sorted(self.issuers)},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise OidcError(401, "token is expired") from exc
        except ClaimError as exc:
            raise OidcError(401, f"token claim {exc.claim!r} is missing or invalid") from exc

    def _check_identity(self, claims: dict[str, Any]) -> None:
        if claims.get("email") != self.service_account_email:
            raise OidcError(403, "token email is not the expected service account")
        # Google sends a JSON boolean here; a string "true" is not accepted.
        if claims.get("email_verified") is not True:
            raise OidcError(403, "token email is not verified")


def parse_bearer(authorization: str | None) -> str:
    """Return the token of a `Bearer` credential (RFC 6750, section 2.1)."""
    if not authorization:
        raise OidcError(401, "missing Authorization header")

    # The auth scheme name is case-insensitive (RFC 9110, section 11.1).
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise OidcError(401, "malformed Authorization header; expected 'Bearer <token>'")
    return token


def split_token(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Decode a JWS compact token into header, claims and the raw signature text.

    The claims returned here are not verified yet.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise OidcError(401, "malformed token; expected three dot-separated parts")
    header = _decode_json_part(parts[0], "header")
    claims = _decode_json_part(parts[1], "payload")
    return header, claims, parts[2]


def _decode_json_part(part: str, label: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise OidcError(401, f"malformed token {label}") from exc
    if not isinstance(value, dict):
        raise OidcError(401, f"malformed token {label}")
    return value


def _check_header(header: dict[str, Any]) -> str:
    if header.get("alg") != ALLOWED_ALGORITHM:
        raise OidcError(401, f"token algorithm must be {ALLOWED_ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise OidcError(401, "token header has no key id")
    return kid


def _decode_signed(token: str, key: RSAKey) -> dict[str, Any]:
    try:
        decoded = jwt.decode(token, key, algorithms=[ALLOWED_ALGORITHM])
    except JoseError as exc:
        raise OidcError(401, "token signature is invalid") from exc
    return decoded.claims
