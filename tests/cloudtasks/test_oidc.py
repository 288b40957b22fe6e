from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from app.oidc import KeysUnavailableError, OidcError, OidcVerifier, SignatureMode
from tests.cloudtasks.tokens import (
    AUDIENCE,
    JWKS_URL,
    SERVICE_ACCOUNT,
    FakeMonotonicClock,
    SigningKey,
    hs256_token,
    id_token_claims,
    jwks_response,
    strip_signature,
    unsigned_token,
)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("key-1")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate("key-2")


@pytest.fixture
def clock() -> FakeMonotonicClock:
    return FakeMonotonicClock()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def jwks_route(respx_mock: respx.MockRouter, key: SigningKey) -> respx.Route:
    return respx_mock.get(JWKS_URL).mock(return_value=jwks_response(key))


def make_verifier(
    http_client: httpx.AsyncClient,
    clock: FakeMonotonicClock,
    mode: SignatureMode = SignatureMode.VERIFY,
) -> OidcVerifier:
    return OidcVerifier(
        AUDIENCE,
        SERVICE_ACCOUNT,
        http_client,
        jwks_url=JWKS_URL,
        mode=mode,
        monotonic_clock=clock,
    )


@pytest.fixture
def verifier(http_client: httpx.AsyncClient, clock: FakeMonotonicClock) -> OidcVerifier:
    return make_verifier(http_client, clock)


async def rejection(verifier: OidcVerifier, authorization: str | None) -> OidcError:
    with pytest.raises(OidcError) as excinfo:
        await verifier.verify(authorization)
    return excinfo.value


async def test_valid_token_returns_claims(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    claims = await verifier.verify(f"Bearer {key.sign(id_token_claims())}")

    assert claims["email"] == SERVICE_ACCOUNT
    assert claims["aud"] == AUDIENCE
    assert jwks_route.call_count == 1


async def test_bearer_scheme_is_case_insensitive(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    claims = await verifier.verify(f"bearer {key.sign(id_token_claims())}")

    assert claims["email"] == SERVICE_ACCOUNT


async def test_forged_signature_same_kid_rejected(
    verifier: OidcVerifier, other_key: SigningKey, jwks_route: respx.Route
) -> None:
    forged = other_key.sign(id_token_claims(), kid="key-1")

    error = await rejection(verifier, f"Bearer {forged}")

    assert error.status == 401
    assert "signature" in error.reason


async def test_tampered_payload_rejected(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    header, _, signature = key.sign(id_token_claims()).split(".")
    other_payload = key.sign(id_token_claims(email="attacker@example.test")).split(".")[1]

    error = await rejection(verifier, f"Bearer {header}.{other_payload}.{signature}")

    assert error.status == 401
    assert "signature" in error.reason


@pytest.mark.parametrize(
    ("overrides", "claim"),
    [
        ({"aud": "https://other-service.example.test"}, "aud"),
        ({"aud": None}, "aud"),
        ({"iss": "https://evil.example.test"}, "iss"),
        ({"iss": None}, "iss"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
    ],
)
async def test_bad_claim_rejected(
    verifier: OidcVerifier,
    key: SigningKey,
    jwks_route: respx.Route,
    overrides: dict[str, object],
    claim: str,
) -> None:
    claims = {k: v for k, v in id_token_claims(**overrides).items() if v is not None}

    error = await rejection(verifier, f"Bearer {key.sign(claims)}")

    assert error.status == 401
    assert repr(claim) in error.reason


async def test_short_issuer_form_accepted(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    token = key.sign(id_token_claims(iss="accounts.google.com"))

    claims = await verifier.verify(f"Bearer {token}")

    assert claims["iss"] == "accounts.google.com"


@pytest.mark.parametrize(
    ("overrides", "reason_word"),
    [
        (
            {"email": "someone-else@kaboom-test.iam.gserviceaccount.com"},
            "service account",
        ),
        ({"email": None}, "service account"),
        ({"email_verified": False}, "not verified"),
        ({"email_verified": "true"}, "not verified"),
        ({"email_verified": None}, "not verified"),
    ],
)
async def test_wrong_identity_forbidden(
    verifier: OidcVerifier,
    key: SigningKey,
    jwks_route: respx.Route,
    overrides: dict[str, object],
    reason_word: str,
) -> None:
    claims = {k: v for k, v in id_token_claims(**overrides).items() if v is not None}

    error = await rejection(verifier, f"Bearer {key.sign(claims)}")

    assert error.status == 403
    assert reason_word in error.reason


async def test_expired_token_rejected(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    now_s = int(time.time())
    token = key.sign(id_token_claims(iat=now_s - 3700, exp=now_s - 100))

    error = await rejection(verifier, f"Bearer {token}")

    assert error.status == 401
    assert "expired" in error.reason


async def test_expiry_within_leeway_accepted(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    now_s = int(time.time())
    token = key.sign(id_token_claims(iat=now_s - 3600, exp=now_s - 2))

    claims = await verifier.verify(f"Bearer {token}")

    assert claims["exp"] == now_s - 2


async def test_future_iat_beyond_leeway_rejected(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    now_s = int(time.time())
    token = key.sign(id_token_claims(iat=now_s + 120, exp=now_s + 3720))

    error = await rejection(verifier, f"Bearer {token}")

    assert error.status == 401
    assert "'iat'" in error.reason


async def test_alg_none_rejected_without_key_fetch(
    verifier: OidcVerifier, jwks_route: respx.Route
) -> None:
    error = await rejection(verifier, f"Bearer {unsigned_token(id_token_claims(), 'key-1')}")

    assert error.status == 401
    assert "RS256" in error.reason
    assert jwks_route.call_count == 0


async def test_hs256_with_public_key_secret_rejected(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    public_pem = key.key.as_pem(private=False)
    token = hs256_token(id_token_claims(), "key-1", secret=public_pem)

    error = await rejection(verifier, f"Bearer {token}")

    assert error.status == 401
    assert "RS256" in error.reason


@pytest.mark.parametrize("authorization", [None, ""])
async def test_missing_header_rejected(
    verifier: OidcVerifier, jwks_route: respx.Route, authorization: str | None
) -> None:
    error = await rejection(verifier, authorization)

    assert error.status == 401
    assert "missing" in error.reason


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer !!!.###.sig",
        "Bearer eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.sig",
        "Bearer WyJsaXN0Il0.e30.sig",
        "Bearer one two",
    ],
)
async def test_malformed_header_rejected(
    verifier: OidcVerifier, jwks_route: respx.Route, authorization: str
) -> None:
    error = await rejection(verifier, authorization)

    assert error.status == 401
    assert jwks_route.call_count == 0


async def test_token_without_kid_rejected(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    from joserfc import jwt

    token = jwt.encode({"alg": "RS256"}, id_token_claims(), key.key, algorithms=["RS256"])

    error = await rejection(verifier, f"Bearer {token}")

    assert error.status == 401
    assert "key id" in error.reason


async def test_unknown_kid_refetches_after_rotation(
    verifier: OidcVerifier,
    clock: FakeMonotonicClock,
    key: SigningKey,
    other_key: SigningKey,
    jwks_route: respx.Route,
) -> None:
    await verifier.verify(f"Bearer {key.sign(id_token_claims())}")
    jwks_route.mock(return_value=jwks_response(other_key))
    clock.advance(60)

    claims = await verifier.verify(f"Bearer {other_key.sign(id_token_claims())}")

    assert claims["email"] == SERVICE_ACCOUNT
    assert jwks_route.call_count == 2


async def test_unknown_kid_refetch_is_rate_limited(
    verifier: OidcVerifier,
    clock: FakeMonotonicClock,
    key: SigningKey,
    jwks_route: respx.Route,
) -> None:
    await verifier.verify(f"Bearer {key.sign(id_token_claims())}")
    bogus = [f"Bearer {key.sign(id_token_claims(), kid=f'bogus-{i}')}" for i in range(20)]

    for authorization in bogus:
        error = await rejection(verifier, authorization)
        assert error.status == 401
        assert "unknown key id" in error.reason
    assert jwks_route.call_count == 1

    clock.advance(31)
    results = await asyncio.gather(*(verifier.verify(a) for a in bogus), return_exceptions=True)

    assert all(isinstance(r, OidcError) and r.status == 401 for r in results)
    assert jwks_route.call_count == 2


async def test_cache_honours_max_age(
    verifier: OidcVerifier,
    clock: FakeMonotonicClock,
    key: SigningKey,
    jwks_route: respx.Route,
) -> None:
    jwks_route.mock(return_value=jwks_response(key, max_age_s=100))
    authorization = f"Bearer {key.sign(id_token_claims())}"

    await verifier.verify(authorization)
    clock.advance(99)
    await verifier.verify(authorization)
    assert jwks_route.call_count == 1

    clock.advance(2)
    await verifier.verify(authorization)
    assert jwks_route.call_count == 2


async def test_cache_subtracts_age_header(
    verifier: OidcVerifier,
    clock: FakeMonotonicClock,
    key: SigningKey,
    jwks_route: respx.Route,
) -> None:
    response = jwks_response(key, max_age_s=100)
    response.headers["Age"] = "90"
    jwks_route.mock(return_value=response)
    authorization = f"Bearer {key.sign(id_token_claims())}"

    await verifier.verify(authorization)
    clock.advance(9)
    await verifier.verify(authorization)
    assert jwks_route.call_count == 1

    clock.advance(2)
    await verifier.verify(authorization)
    assert jwks_route.call_count == 2


async def test_concurrent_verifications_share_one_fetch(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    release = asyncio.Event()

    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return jwks_response(key)

    jwks_route.mock(side_effect=slow_jwks)
    authorization = f"Bearer {key.sign(id_token_claims())}"
    pending = [asyncio.create_task(verifier.verify(authorization)) for _ in range(10)]
    await asyncio.sleep(0.05)
    release.set()

    results = await asyncio.gather(*pending)

    assert all(r["email"] == SERVICE_ACCOUNT for r in results)
    assert jwks_route.call_count == 1


async def test_cancelled_request_does_not_cancel_shared_fetch(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    release = asyncio.Event()

    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return jwks_response(key)

    jwks_route.mock(side_effect=slow_jwks)
    authorization = f"Bearer {key.sign(id_token_claims())}"
    first = asyncio.create_task(verifier.verify(authorization))
    second = asyncio.create_task(verifier.verify(authorization))
    await asyncio.sleep(0.05)
    first.cancel()
    release.set()

    claims = await second

    assert claims["email"] == SERVICE_ACCOUNT
    assert first.cancelled()
    assert jwks_route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(200, text="not json"),
        httpx.ConnectError("down"),
    ],
)
async def test_key_endpoint_down_is_503(
    verifier: OidcVerifier,
    key: SigningKey,
    jwks_route: respx.Route,
    failure: httpx.Response | Exception,
) -> None:
    if isinstance(failure, Exception):
        jwks_route.mock(side_effect=failure)
    else:
        jwks_route.mock(return_value=failure)

    error = await rejection(verifier, f"Bearer {key.sign(id_token_claims())}")

    assert isinstance(error, KeysUnavailableError)
    assert error.status == 503


async def test_failed_fetch_is_not_retried_at_once(
    verifier: OidcVerifier,
    clock: FakeMonotonicClock,
    key: SigningKey,
    jwks_route: respx.Route,
) -> None:
    jwks_route.mock(return_value=httpx.Response(503))
    authorization = f"Bearer {key.sign(id_token_claims())}"

    for _ in range(5):
        error = await rejection(verifier, authorization)
        assert error.status == 503
    assert jwks_route.call_count == 1

    jwks_route.mock(return_value=jwks_response(key))
    clock.advance(31)
    claims = await verifier.verify(authorization)

    assert claims["email"] == SERVICE_ACCOUNT
    assert jwks_route.call_count == 2


async def test_cached_key_used_while_endpoint_down(
    verifier: OidcVerifier,
    clock: FakeMonotonicClock,
    key: SigningKey,
    jwks_route: respx.Route,
) -> None:
    authorization = f"Bearer {key.sign(id_token_claims())}"
    await verifier.verify(authorization)
    jwks_route.mock(return_value=httpx.Response(500))
    clock.advance(3700)

    claims = await verifier.verify(authorization)

    assert claims["email"] == SERVICE_ACCOUNT
    assert jwks_route.call_count == 2
    error = await rejection(verifier, f"Bearer {key.sign(id_token_claims(), kid='new')}")
    assert error.status == 503


async def test_removed_signature_rejected_in_verify_mode(
    verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    token = strip_signature(key.sign(id_token_claims()))

    error = await rejection(verifier, f"Bearer {token}")

    assert error.status == 401
    assert "cloud_run_verified" in error.reason


@pytest.fixture
def cloud_run_verifier(http_client: httpx.AsyncClient, clock: FakeMonotonicClock) -> OidcVerifier:
    return make_verifier(http_client, clock, SignatureMode.CLOUD_RUN_VERIFIED)


async def test_cloud_run_mode_accepts_removed_signature(
    cloud_run_verifier: OidcVerifier, key: SigningKey, jwks_route: respx.Route
) -> None:
    token = strip_signature(key.sign(id_token_claims()))

    claims = await cloud_run_verifier.verify(f"Bearer {token}")

    assert claims["email"] == SERVICE_ACCOUNT
    assert jwks_route.call_count == 0


@pytest.mark.parametrize(
    ("overrides", "status", "reason_word"),
    [
        ({"aud": "https://other-service.example.test"}, 401, "'aud'"),
        ({"iss": "https://evil.example.test"}, 401, "'iss'"),
        ({"iat_offset_s": -3700, "exp_offset_s": -100}, 401, "expired"),
        ({"iat_offset_s": 120, "exp_offset_s": 3720}, 401, "'iat'"),
        (
            {"email": "someone-else@kaboom-test.iam.gserviceaccount.com"},
            403,
            "service account",
        ),
        ({"email_verified": False}, 403, "not verified"),
    ],
)
async def test_cloud_run_mode_still_checks_claims(
    cloud_run_verifier: OidcVerifier,
    key: SigningKey,
    overrides: dict[str, object],
    status: int,
    reason_word: str,
) -> None:
    token = strip_signature(key.sign(id_token_claims(**overrides)))

    error = await rejection(cloud_run_verifier, f"Bearer {token}")

    assert error.status == status
    assert reason_word in error.reason


async def test_cloud_run_mode_verifies_present_signature(
    cloud_run_verifier: OidcVerifier, other_key: SigningKey, jwks_route: respx.Route
) -> None:
    forged = other_key.sign(id_token_claims(), kid="key-1")

    error = await rejection(cloud_run_verifier, f"Bearer {forged}")

    assert error.status == 401
    assert jwks_route.call_count == 1


async def test_cloud_run_mode_rejects_alg_none(
    cloud_run_verifier: OidcVerifier,
) -> None:
    token = unsigned_token(id_token_claims(), "key-1")
    header, payload, _ = token.split(".")

    error = await rejection(
        cloud_run_verifier, f"Bearer {header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"
    )

    assert error.status == 401


async def test_logs_never_contain_token(
    verifier: OidcVerifier,
    key: SigningKey,
    other_key: SigningKey,
    jwks_route: respx.Route,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good = key.sign(id_token_claims())
    forged = other_key.sign(id_token_claims(), kid="key-1")
    signatures = [good.split(".")[2], forged.split(".")[2]]

    await verifier.verify(f"Bearer {good}")
    await rejection(verifier, f"Bearer {forged}")

    assert any(r.getMessage() == "OIDC token rejected" for r in caplog.records)
    for record in caplog.records:
        logged = str(record.__dict__)
        for signature in signatures:
            assert signature not in logged
