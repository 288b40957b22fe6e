"""Fixtures: a real VictoriaMetrics server on loopback, and configs pointing at it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ingestion.config import IngestionConfig, InfluxTarget

VICTORIA_METRICS_BINARY = "/usr/bin/victoria-metrics"
STARTUP_TIMEOUT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class VictoriaMetrics:
    """A running server and helpers to read back what was written."""

    url: str

    def export(self, measurement: str) -> dict[tuple[str, str], dict[int, float]]:
        """Return {(ticker, field): {timestamp_ms: value}} for every series of a measurement."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()
        response = httpx.post(
            f"{self.url}/api/v1/export",
            data={"match[]": f'{{__name__=~"{measurement}_.+"}}'},
            timeout=30,
        )
        response.raise_for_status()
        series: dict[tuple[str, str], dict[int, float]] = {}
        for line in response.text.splitlines():
            record = json.loads(line)
            field = record["metric"]["__name__"].removeprefix(f"{measurement}_")
            key = (record["metric"]["ticker"], field)
            values = series.setdefault(key, {})
            for timestamp_ms, value in zip(record["timestamps"], record["values"], strict=True):
                assert timestamp_ms not in values, f"two points for {key} at {timestamp_ms}"
                values[timestamp_ms] = value
        return series

    def labels(self, measurement: str) -> list[dict[str, str]]:
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()
        response = httpx.post(
            f"{self.url}/api/v1/export",
            data={"match[]": f'{{__name__=~"{measurement}_.+"}}'},
            timeout=30,
        )
        response.raise_for_status()
        return [json.loads(line)["metric"] for line in response.text.splitlines()]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    binary = shutil.which(VICTORIA_METRICS_BINARY)
    if binary is None:
        pytest.fail(
            f"{VICTORIA_METRICS_BINARY} not found: install the Debian package "
            "victoria-metrics (apt-get install victoria-metrics) to run these tests"
        )
    data_dir = tmp_path_factory.mktemp("victoria-metrics")
    port = free_loopback_port()
    log_path = data_dir / "server.log"
    command = [
        binary,
        "-retentionPeriod=100y",
        f"-storageDataPath={data_dir / 'storage'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        # InfluxDB keeps one point per series and timestamp. VictoriaMetrics keeps
        # duplicates unless deduplication is on, so this makes it behave the same.
        "-dedup.minScrapeInterval=1ms",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log_path)
        yield VictoriaMetrics(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"victoria-metrics exited with {process.returncode}: "
                        f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"victoria-metrics did not answer /health within {STARTUP_TIMEOUT_S} s")


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
