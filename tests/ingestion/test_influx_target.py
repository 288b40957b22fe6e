"""Sample files ingested into a real VictoriaMetrics and read back."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from ingestion.config import InfluxTarget, IngestionConfig, default_market_data_dir
from ingestion.daily import DailyParams, Progress, run_daily
from ingestion.errors import TransientIngestionError
from tests.ingestion.helpers import TOKYO, day_of, read_yfinance_rows, utc_day_of
from tests.servers import VictoriaMetrics, free_port

SAMPLE_FILES = sorted(default_market_data_dir().glob("*.csv"))
PRICE_FIELDS = ("open", "high", "low", "close", "adj_close")
# VictoriaMetrics stores floats as decimals with 12 significant digits, so values such
# as 599.299072265625 come back as 599.2990722656. InfluxDB would return them exactly.
STORAGE_RELATIVE_TOLERANCE = 1e-11


def influx_config(tmp_path: Path, target: InfluxTarget, measurement: str) -> IngestionConfig:
    return IngestionConfig(
        market_data_dir=default_market_data_dir(),
        influx=target,
        points_file=tmp_path / "points.lp",
        measurement=measurement,
        # Smaller than one file, so every ticker needs several batches and a final flush.
        batch_size=1000,
        incremental=False,
    )


def ignore_progress(progress: Progress) -> None:
    pass


@pytest.fixture
def ingested(
    tmp_path: Path,
    influx_target: InfluxTarget,
    victoria_metrics: VictoriaMetrics,
    measurement: str,
) -> tuple[dict, dict[tuple[str, str], dict[int, float]]]:
    config = influx_config(tmp_path, influx_target, measurement)
    result = run_daily(DailyParams(None, None), config, ignore_progress)
    return result.to_dict(), victoria_metrics.export(measurement)


def test_sample_files_are_all_found() -> None:
    assert [path.name for path in SAMPLE_FILES] == [
        "7203.T.csv",
        "7974.T.csv",
        "8306.T.csv",
        "9984.T.csv",
    ]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.stem)
def test_sample_file_values_read_back(path: Path, ingested: tuple) -> None:
    result, stored = ingested
    ticker, rows = read_yfinance_rows(path)
    expected = [row for row in rows if not row.is_zero_volume_flat and row.is_inside_range]

    stored_close = stored[(ticker, "close")]
    stamps_by_day = {day_of(stamp, TOKYO): stamp for stamp in stored_close}
    assert len(stored_close) == len(expected)
    for row in expected:
        stamp = stamps_by_day[row.day]
        for field in PRICE_FIELDS:
            stored_value = stored[(ticker, field)][stamp]
            expected_value = pytest.approx(row.values[field], rel=STORAGE_RELATIVE_TOLERANCE)
            assert stored_value == expected_value, (row.day, field)
        assert stored[(ticker, "volume")][stamp] == row.volume, row.day

    outcome = next(item for item in result["tickers"] if item["ticker"] == ticker)
    assert outcome["bars_written"] == len(expected)
    assert outcome["bars_rejected"] == len(rows) - len(expected)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.stem)
def test_tokyo_dates_not_shifted(path: Path, ingested: tuple) -> None:
    _, stored = ingested
    ticker, rows = read_yfinance_rows(path)
    expected_days = {row.day for row in rows if not row.is_zero_volume_flat and row.is_inside_range}

    stamps = stored[(ticker, "close")].keys()
    assert {day_of(ts, TOKYO) for ts in stamps} == expected_days
    assert {utc_day_of(ts) for ts in stamps} == expected_days
    local_times = {datetime.datetime.fromtimestamp(ts / 1000, tz=TOKYO).time() for ts in stamps}
    assert local_times == {datetime.time(15, 0)}


def test_result_totals_match_read_back(ingested: tuple) -> None:
    result, stored = ingested
    stored_bars = sum(len(values) for (_, field), values in stored.items() if field == "close")
    assert result["bars_written"] == stored_bars
    assert result["tickers_done"] == ["7203.T", "7974.T", "8306.T", "9984.T"]


def test_rerun_leaves_one_point_per_bar(
    tmp_path: Path,
    influx_target: InfluxTarget,
    victoria_metrics: VictoriaMetrics,
    measurement: str,
) -> None:
    config = influx_config(tmp_path, influx_target, measurement)
    params = DailyParams(datetime.date(2014, 12, 31), ("7203.T",))
    first = run_daily(params, config, ignore_progress)
    after_first = victoria_metrics.export(measurement)
    second = run_daily(params, config, ignore_progress)
    after_second = victoria_metrics.export(measurement)

    assert second.to_dict()["bars_written"] == first.to_dict()["bars_written"]
    assert after_second == after_first
    assert len(after_first[("7203.T", "close")]) == first.to_dict()["bars_written"]


def test_write_target_down_raises_transient(tmp_path: Path, measurement: str) -> None:
    closed_port = free_port()
    target = InfluxTarget(url=f"http://127.0.0.1:{closed_port}", token="t", org="o", bucket="b")
    config = dataclasses.replace(
        influx_config(tmp_path, target, measurement), write_attempts=2, write_backoff_s=0.01
    )

    with pytest.raises(TransientIngestionError) as caught:
        run_daily(DailyParams(None, ("7974.T",)), config, ignore_progress)

    message = str(caught.value)
    assert f"127.0.0.1:{closed_port}" in message
    assert "7974.T" in message
    assert "2 attempts" in message
