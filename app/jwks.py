"""Fetch and cache the RS256 public keys (JWKS) that sign Google ID tokens.

The cache follows the key endpoint's `Cache-Control: max-age` (RFC 9111,
section 5.2.2.1) minus its `Age` header, refetches when a token names a key id
the cache lacks, and runs at most one fetch at a time. Fetches use the
`httpx.AsyncClient` passed in, so a slow key endpoint does not block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

logger = logging.getLogger(__name__)

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"


class JwksFetchError(Exception):
    """Raised when the key endpoint cannot be read or returns no usable key."""


class JwksCache:
    """RS256 keys by key id, fetched from `url` and cached by `max-age`.

    A token with an unknown key id triggers a refetch, but at most once per
    `min_refetch_interval_s`, so a flood of made-up key ids cannot turn into a
    flood of requests to the key endpoint. After a failed fetch the same
    interval applies before the next attempt.
    """

    def __init__(
        self,
        http_client: httpx.AsyncClient,
        url: str = GOOGLE_JWKS_URL,
        *,
        min_refetch_interval_s: float = 30.0,
        default_max_age_s: float = 300.0,
        fetch_timeout_s: float = 5.0,
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http_client = http_client
        self._url = url
        self._min_refetch_interval_s = min_refetch_interval_s
        self._default_max_age_s = default_max_age_s
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = monotonic_clock

        self._keys: dict[str, RSAKey] = {}
        self._expires_at: float | None = None
        self._last_attempt_at: float | None = None
        self._last_attempt_failed = False
        self._fetch_task: asyncio.Task[None] | None = None

    async def get_key(self, kid: str) -> RSAKey | None:
        """Return the key with id `kid`, or None if the endpoint does not list it.

        Raises JwksFetchError when keys are needed but the endpoint failed and
        no previously fetched key with this id is at hand.
        """
        if self._is_fresh() and kid in self._keys:
            return self._keys[kid]

        if not self._may_fetch(kid):
            return self._keys_or_raise(kid)

        try:
            await self._fetch_shared()
        except JwksFetchError:
            # Keep using a key fetched earlier so that a short outage of the key
            # endpoint does not reject every delivery. The cost: a key that Google
            # has withdrawn stays accepted until a fetch succeeds again.
            if kid in self._keys:
                logger.warning("using cached JWKS key after fetch failure", extra={"kid": kid})
                return self._keys[kid]
            raise
        return self._keys.get(kid)

    def _is_fresh(self) -> bool:
        return self._expires_at is not None and self._clock() < self._expires_at

    def _may_fetch(self, kid: str) -> bool:
        if self._last_attempt_at is None:
            return True
        throttled = self._clock() - self._last_attempt_at < self._min_refetch_interval_s
        if self._last_attempt_failed:
            return not throttled
        if not self._is_fresh():
            return True
        # The cache is fresh but lacks `kid`: the keys may have rotated.
        return not throttled

    def _keys_or_raise(self, kid: str) -> RSAKey | None:
        if self._last_attempt_failed and kid not in self._keys:
            raise JwksFetchError("JWKS endpoint failed recently; retry later")
        return self._keys.get(kid)

    async def _fetch_shared(self) -> None:
        # One fetch serves every request that arrives while it runs. The shield
        # keeps a cancelled request from cancelling the fetch for the others.
        if self._fetch_task is None:
            self._fetch_task = asyncio.get_running_loop().create_task(self._fetch())
            self._fetch_task.add_done_callback(self._forget_fetch_task)
        await asyncio.shield(self._fetch_task)

    def _forget_fetch_task(self, task: asyncio.Task[None]) -> None:
        self._fetch_task = None
        # Read the outcome so a fetch whose callers were all cancelled does not
        # end up as an "exception was never retrieved" error at shutdown.
        if not task.cancelled():
            task.exception()

    async def _fetch(self) -> None:
        self._last_attempt_at = self._clock()
        self._last_attempt_failed = True
        try:
            response = await self._http_client.get(self._url, timeout=self._fetch_timeout_s)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning(
                "JWKS fetch failed",
                extra={"jwks_url": self._url, "error": f"{type(exc).__name__}: {exc}"},
            )
            raise JwksFetchError(f"JWKS fetch from {self._url} failed: {exc}") from exc

        keys = parse_rs256_keys(document)
        if not keys:
            logger.warning("JWKS contains no RS256 signing key", extra={"jwks_url": self._url})
            raise JwksFetchError(f"JWKS from {self._url} contains no RS256 signing key")

        max_age_s = cache_lifetime_s(response.headers, self._default_max_age_s)
        self._keys = keys
        self._expires_at = self._last_attempt_at + max_age_s
        self._last_attempt_failed = False
        logger.info(
            "JWKS fetched",
            extra={"jwks_url": self._url, "kids": sorted(keys), "max_age_s": max_age_s},
        )


def parse_rs256_keys(document: Any) -> dict[str, RSAKey]:
    """Import the RSA signing keys of a JWKS document, by key id.

    Keys without a `kid`, of another type, marked for encryption or for
    another algorithm are skipped rather than failing the whole set.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return {}

    keys: dict[str, RSAKey] = {}
    for entry in document["keys"]:
        if not _is_rs256_signing_jwk(entry):
            continue
        try:
            keys[entry["kid"]] = RSAKey.import_key(entry)
        except (JoseError, ValueError, TypeError):
            logger.warning("skipping JWKS key that fails to import", extra={"kid": entry["kid"]})
    return keys


def _is_rs256_signing_jwk(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("kid"), str)
        and entry.get("kty") == "RSA"
        and entry.get("use", "sig") == "sig"
        and entry.get("alg", "RS256") == "RS256"
    )


def cache_lifetime_s(headers: Mapping[str, str], default_s: float) -> float:
    """Return how long a response stays fresh: `max-age` minus `Age`, at least 0.

    Without a usable `max-age` directive the response is kept for `default_s`.
    `no-store` and `no-cache` make it stale at once (RFC 9111, section 5.2.2).
    """
    directives = [d.strip().lower() for d in headers.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0

    max_age_s = _directive_seconds(directives, "max-age")
    if max_age_s is None:
        return default_s

    age_s = _parse_seconds(headers.get("age", "0")) or 0
    return float(max(0, max_age_s - age_s))


def _directive_seconds(directives: list[str], name: str) -> int | None:
    for directive in directives:
        key, _, value = directive.partition("=")
        if key.strip() == name:
            return _parse_seconds(value.strip().strip('"'))
    return None


def _parse_seconds(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None
