"""Settings read once from the environment and validated at startup.

Nothing else in the code reads `os.environ`: the app factory builds one
`Settings` and passes it down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.jwks import GOOGLE_JWKS_URL
from ingestion.config import default_market_data_dir

DEFAULT_STATE_DIR = Path("var")
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DAY_S = 86_400
YEAR_S = 366 * DAY_S


class SettingsError(ValueError):
    """An environment variable is missing or has an invalid value; the message names it."""


@dataclass(frozen=True)
class CloudTasksSettings:
    """Queue, target and OIDC identity of Cloud Tasks deliveries.

    `service_account` is None when no OIDC identity is configured; the worker
    then accepts only in-process deliveries (or any, with INTERNAL_AUTH=disabled).
    """

    project: str
    location: str
    queue: str
    worker_base_url: str
    service_account: str | None
    oidc_audience: str
    deadline_s: int
    verify_signature: bool
    jwks_url: str
    # host:port of a local Cloud Tasks server (python -m localtasks), or None for Google's.
    emulator_host: str | None


@dataclass(frozen=True)
class Settings:
    ingest_api_token: str
    redis_url: str | None
    embedded_redis_dir: Path
    market_data_dir: Path
    influx_url: str | None
    influx_token: str
    influx_org: str
    influx_bucket: str
    points_file: Path
    use_cloud_tasks: bool
    internal_auth_disabled: bool
    lease_s: int
    task_max_attempts: int
    retry_after_s: int
    abandoned_job_s: int
    completed_job_ttl_s: int
    failed_job_ttl_s: int
    event_stream_ttl_s: int
    sse_ping_s: int
    sse_max_streams: int
    log_level: str
    cloud_tasks: CloudTasksSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables; raise SettingsError naming a bad one."""
        token = env.get("INGEST_API_TOKEN", "")
        if not token:
            raise SettingsError(
                "INGEST_API_TOKEN is missing: set it to the secret n8n sends in X-Ingest-Token"
            )
        state_dir = Path(env.get("KABOOM_STATE_DIR", str(DEFAULT_STATE_DIR)))
        use_cloud_tasks = _bool(env, "USE_CLOUD_TASKS", default=False)
        influx_url = env.get("INFLUX_URL") or None
        if influx_url is not None:
            for name in ("INFLUX_TOKEN", "INFLUX_ORG", "INFLUX_BUCKET"):
                if not env.get(name):
                    raise SettingsError(f"{name} is missing: it is required when INFLUX_URL is set")

        return cls(
            ingest_api_token=token,
            redis_url=_redis_url(env),
            embedded_redis_dir=state_dir / "redis",
            market_data_dir=_market_data_dir(env),
            influx_url=influx_url,
            influx_token=env.get("INFLUX_TOKEN", ""),
            influx_org=env.get("INFLUX_ORG", ""),
            influx_bucket=env.get("INFLUX_BUCKET", ""),
            points_file=Path(env.get("POINTS_FILE") or state_dir / "points.lp"),
            use_cloud_tasks=use_cloud_tasks,
            internal_auth_disabled=_internal_auth_disabled(env, use_cloud_tasks),
            lease_s=_int(env, "LEASE_S", default=60, low=5, high=3600),
            task_max_attempts=_int(env, "TASK_MAX_ATTEMPTS", default=5, low=1, high=100),
            retry_after_s=_int(env, "RETRY_AFTER_S", default=30, low=1, high=3600),
            abandoned_job_s=_int(env, "ABANDONED_JOB_S", default=3600, low=60, high=YEAR_S),
            completed_job_ttl_s=_int(
                env, "COMPLETED_JOB_TTL_S", default=7 * DAY_S, low=60, high=YEAR_S
            ),
            failed_job_ttl_s=_int(env, "FAILED_JOB_TTL_S", default=30 * DAY_S, low=60, high=YEAR_S),
            event_stream_ttl_s=_int(
                env, "EVENT_STREAM_TTL_S", default=7 * DAY_S, low=60, high=YEAR_S
            ),
            sse_ping_s=_int(env, "SSE_PING_S", default=15, low=1, high=300),
            sse_max_streams=_int(env, "SSE_MAX_STREAMS", default=100, low=1, high=10_000),
            log_level=_log_level(env),
            cloud_tasks=_cloud_tasks_settings(env),
        )


def _cloud_tasks_settings(env: Mapping[str, str]) -> CloudTasksSettings:
    use_cloud_tasks = _bool(env, "USE_CLOUD_TASKS", default=False)
    if use_cloud_tasks:
        for name in ("GOOGLE_CLOUD_PROJECT", "WORKER_BASE_URL", "TASKS_SERVICE_ACCOUNT"):
            if not env.get(name):
                raise SettingsError(f"{name} is missing: it is required when USE_CLOUD_TASKS=true")
    worker_base_url = env.get("WORKER_BASE_URL", "").rstrip("/")
    if worker_base_url and not worker_base_url.startswith(("https://", "http://")):
        raise SettingsError(
            f"WORKER_BASE_URL={worker_base_url!r} is invalid: expected the service's "
            "own URL, such as https://kaboom-ingest-abc123-an.a.run.app"
        )
    service_account = env.get("TASKS_SERVICE_ACCOUNT") or None
    if service_account is not None and "@" not in service_account:
        raise SettingsError(
            f"TASKS_SERVICE_ACCOUNT={service_account!r} is invalid: expected a service "
            "account email"
        )
    audience = env.get("OIDC_AUDIENCE") or worker_base_url
    if service_account is not None and not audience:
        raise SettingsError(
            "OIDC_AUDIENCE is missing: set it or WORKER_BASE_URL when TASKS_SERVICE_ACCOUNT is set"
        )
    return CloudTasksSettings(
        project=env.get("GOOGLE_CLOUD_PROJECT", ""),
        location=env.get("CLOUD_TASKS_LOCATION") or "asia-northeast1",
        queue=env.get("INGEST_QUEUE") or "ingest-jobs",
        worker_base_url=worker_base_url,
        service_account=service_account,
        oidc_audience=audience,
        deadline_s=_int(env, "TASK_DEADLINE_S", default=1800, low=15, high=1800),
        verify_signature=_bool(env, "OIDC_VERIFY_SIGNATURE", default=True),
        jwks_url=env.get("OIDC_JWKS_URL") or GOOGLE_JWKS_URL,
        emulator_host=env.get("CLOUD_TASKS_EMULATOR_HOST") or None,
    )


def _redis_url(env: Mapping[str, str]) -> str | None:
    url = env.get("REDIS_URL") or None
    if url is not None and not url.startswith(REDIS_URL_SCHEMES):
        raise SettingsError(
            f"REDIS_URL={url!r} is invalid: expected a URL starting with "
            f"{', '.join(REDIS_URL_SCHEMES)}"
        )
    return url


def _market_data_dir(env: Mapping[str, str]) -> Path:
    directory = Path(env.get("MARKET_DATA_DIR") or default_market_data_dir())
    if not directory.is_dir():
        raise SettingsError(f"MARKET_DATA_DIR={str(directory)!r} is not a directory")
    return directory


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise SettingsError(
            f"LOG_LEVEL={level!r} is invalid: expected one of {', '.join(LOG_LEVELS)}"
        )
    return level


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise SettingsError(f"{name}={raw!r} is invalid: expected true or false")


def _int(env: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is invalid: expected an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range: expected {low} to {high}")
    return value


def _internal_auth_disabled(env: Mapping[str, str], use_cloud_tasks: bool) -> bool:
    raw = env.get("INTERNAL_AUTH", "")
    if raw in ("", "enabled"):
        return False
    if raw == "disabled" and use_cloud_tasks:
        raise SettingsError(
            "INTERNAL_AUTH=disabled is rejected with USE_CLOUD_TASKS=true: the worker "
            "endpoint would run jobs for any caller; the OIDC check needs TASKS_SERVICE_ACCOUNT"
        )
    if raw == "disabled":
        return True
    raise SettingsError(
        f"INTERNAL_AUTH={raw!r} is invalid: expected 'disabled', 'enabled' or unset"
    )
