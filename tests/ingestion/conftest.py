"""Fixtures: ingestion configs pointing at the session's VictoriaMetrics server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ingestion.config import InfluxTarget, IngestionConfig
from tests.servers import VictoriaMetrics

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_DATA_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture
def measurement() -> str:
    """A measurement name of its own per test, so tests sharing the server do not mix."""
    return f"bars_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def influx_target(victoria_metrics: VictoriaMetrics) -> InfluxTarget:
    return InfluxTarget(url=victoria_metrics.url, token="test-token", org="test", bucket="test")


@pytest.fixture
def file_config(tmp_path: Path) -> IngestionConfig:
    return IngestionConfig(
        market_data_dir=REPO_ROOT / "ingestion" / "sample_data",
        influx=None,
        points_file=tmp_path / "out" / "points.lp",
        incremental=False,
    )
