"""Settings are validated at startup, and each error names its variable."""

from __future__ import annotations

import pytest

from app.jwks import GOOGLE_JWKS_URL
from app.settings import Settings, SettingsError

BASE = {"INGEST_API_TOKEN": "secret"}
CLOUD = {
    **BASE,
    "USE_CLOUD_TASKS": "true",
    "GOOGLE_CLOUD_PROJECT": "kaboom",
    "WORKER_BASE_URL": "https://kaboom-ingest-abc-an.a.run.app/",
    "TASKS_SERVICE_ACCOUNT": "ingest-tasks@kaboom.iam.gserviceaccount.com",
}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)

    assert settings.redis_url is None
    assert settings.influx_url is None
    assert not settings.use_cloud_tasks
    assert not settings.internal_auth_disabled
    assert settings.task_max_attempts == 5
    assert settings.cloud_tasks.location == "asia-northeast1"
    assert settings.cloud_tasks.queue == "ingest-jobs"
    assert settings.cloud_tasks.deadline_s == 1800
    assert settings.cloud_tasks.jwks_url == GOOGLE_JWKS_URL
    assert settings.cloud_tasks.verify_signature


def test_cloud_tasks_settings() -> None:
    tasks = Settings.from_env(CLOUD).cloud_tasks

    assert tasks.worker_base_url == "https://kaboom-ingest-abc-an.a.run.app"
    assert tasks.oidc_audience == "https://kaboom-ingest-abc-an.a.run.app"
    assert tasks.project == "kaboom"


def test_explicit_audience_wins() -> None:
    env = {**CLOUD, "OIDC_AUDIENCE": "https://ingest.example.test"}

    assert Settings.from_env(env).cloud_tasks.oidc_audience == "https://ingest.example.test"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "INGEST_API_TOKEN"),
        ({**BASE, "INFLUX_URL": "http://127.0.0.1:8086"}, "INFLUX_TOKEN"),
        ({**BASE, "USE_CLOUD_TASKS": "maybe"}, "USE_CLOUD_TASKS"),
        ({**BASE, "LEASE_S": "ten"}, "LEASE_S"),
        ({**BASE, "LEASE_S": "1"}, "LEASE_S"),
        ({**BASE, "INTERNAL_AUTH": "off"}, "INTERNAL_AUTH"),
        ({**BASE, "LOG_LEVEL": "bogus"}, "LOG_LEVEL"),
        ({**BASE, "REDIS_URL": "notaurl"}, "REDIS_URL"),
        ({**BASE, "MARKET_DATA_DIR": "/nonexistent/market"}, "MARKET_DATA_DIR"),
        ({**CLOUD, "GOOGLE_CLOUD_PROJECT": ""}, "GOOGLE_CLOUD_PROJECT"),
        ({**CLOUD, "WORKER_BASE_URL": ""}, "WORKER_BASE_URL"),
        ({**CLOUD, "WORKER_BASE_URL": "kaboom.run.app"}, "WORKER_BASE_URL"),
        ({**CLOUD, "TASKS_SERVICE_ACCOUNT": ""}, "TASKS_SERVICE_ACCOUNT"),
        ({**CLOUD, "TASKS_SERVICE_ACCOUNT": "ingest-tasks"}, "TASKS_SERVICE_ACCOUNT"),
        ({**CLOUD, "TASK_DEADLINE_S": "14"}, "TASK_DEADLINE_S"),
        ({**CLOUD, "TASK_DEADLINE_S": "1801"}, "TASK_DEADLINE_S"),
        ({**CLOUD, "OIDC_VERIFY_SIGNATURE": "nope"}, "OIDC_VERIFY_SIGNATURE"),
    ],
)
def test_invalid_setting_names_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)

    assert str(caught.value).startswith(variable)


def test_internal_auth_disabled_refused_with_cloud_tasks() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**CLOUD, "INTERNAL_AUTH": "disabled"})

    assert str(caught.value).startswith("INTERNAL_AUTH")
