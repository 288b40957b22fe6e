"""Settings for one ingestion run, filled in by the caller (ingestion never reads os.environ)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingestion.watermark import WatermarkStorage

_PACKAGE_DIR = Path(__file__).resolve().parent


def default_market_data_dir() -> Path:
    """Return the directory of yfinance sample files bundled with the package."""
    return _PACKAGE_DIR / "sample_data"


def default_universe_file() -> Path:
    """Return the bundled S&P 500 constituents list."""
    return _PACKAGE_DIR / "universe" / "constituents.csv"


@dataclass(frozen=True)
class InfluxTarget:
    """An InfluxDB 2 compatible write endpoint (InfluxDB, or VictoriaMetrics' /api/v2/write)."""

    url: str
    token: str
    org: str
    bucket: str

    def __repr__(self) -> str:
        # The token is a secret and must not reach logs or job results.
        return f"InfluxTarget(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"


@dataclass(frozen=True)
class HttpSourceConfig:
    """A CSV daily-quotes endpoint in Stooq's download format (Date,Open,High,Low,Close,Volume).

    `url_template` contains `{symbol}`, which is replaced by the Stooq-style symbol
    (`aapl.us`, `7203.jp`, `brk-b.us`). There is no default URL on purpose.
    """

    url_template: str
    timeout_s: float = 10.0
    max_attempts: int = 3
    backoff_s: float = 1.0
    max_retry_after_s: float = 30.0


@dataclass(frozen=True)
class IngestionConfig:
    """Source of the bars and target of the points for one run.

    `influx=None` selects the file target: line protocol in `points_file`.
    `watermark_storage` keeps the watermark elsewhere (the service keeps it
    in Redis, so it outlives a container). Without it, the watermark is the
    file `watermark_file`, by default next to `points_file`
    (`<points_file>.watermark.json`).
    """

    market_data_dir: Path
    influx: InfluxTarget | None
    points_file: Path
    measurement: str = "daily_bars"
    batch_size: int = 5000
    write_timeout_s: float = 10.0
    write_attempts: int = 3
    write_backoff_s: float = 0.5
    incremental: bool = True
    watermark_file: Path | None = None
    watermark_storage: WatermarkStorage | None = None
    universe_file: Path | None = None
    http_source: HttpSourceConfig | None = None
    max_samples: int = 50

    def resolved_watermark_file(self) -> Path:
        if self.watermark_file is not None:
            return self.watermark_file
        return self.points_file.with_name(self.points_file.name + ".watermark.json")
