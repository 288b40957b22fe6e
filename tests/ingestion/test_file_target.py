"""The line-protocol file target: format, re-runs, aborts and incremental runs."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import httpx
import pytest

from ingestion.config import IngestionConfig
from ingestion.daily import DailyParams, Progress, run_daily
from tests.ingestion.helpers import TOKYO, read_yfinance_rows
from tests.ingestion.lineproto import parse_line
from tests.servers import VictoriaMetrics


class AbortRun(Exception):
    pass


def ignore_progress(progress: Progress) -> None:
    pass


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_file_lines_are_line_protocol(file_config: IngestionConfig) -> None:
    result = run_daily(DailyParams(None, ("8306.T",)), file_config, ignore_progress)
    lines = read_lines(file_config.points_file)

    assert len(lines) == result.to_dict()["bars_written"]
    parsed = [parse_line(line) for line in lines]
    assert {line.measurement for line in parsed} == {"daily_bars"}
    assert {tuple(sorted(line.tags.items())) for line in parsed} == {
        (("exchange", "TSE"), ("ticker", "8306.T"))
    }
    assert all(line.fields["volume"].endswith("i") for line in parsed)
    assert all(
        set(line.fields) == {"open", "high", "low", "close", "adj_close", "volume"}
        for line in parsed
    )


def test_file_values_match_csv(file_config: IngestionConfig) -> None:
    run_daily(DailyParams(None, ("9984.T",)), file_config, ignore_progress)
    _, rows = read_yfinance_rows(file_config.market_data_dir / "9984.T.csv")
    rows_by_day = {row.day: row for row in rows}

    for line in map(parse_line, read_lines(file_config.points_file)):
        stamp = datetime.datetime.fromtimestamp(line.timestamp_s, tz=TOKYO)
        row = rows_by_day[stamp.date()]
        assert stamp.time() == datetime.time(15, 0)
        for name in ("open", "high", "low", "close", "adj_close"):
            assert float(line.fields[name]) == row.values[name], (row.day, name)
        assert int(line.fields["volume"].removesuffix("i")) == row.volume


def test_file_imports_into_victoria_metrics(
    file_config: IngestionConfig, victoria_metrics: VictoriaMetrics, measurement: str
) -> None:
    config = dataclasses.replace(file_config, measurement=measurement)
    result = run_daily(DailyParams(None, ("7974.T",)), config, ignore_progress)

    # The same endpoint and precision that `influx write --precision s` uses.
    response = httpx.post(
        f"{victoria_metrics.url}/api/v2/write",
        params={"org": "test", "bucket": "test", "precision": "s"},
        content=config.points_file.read_bytes(),
    )
    response.raise_for_status()

    stored = victoria_metrics.export(measurement)
    assert len(stored[("7974.T", "close")]) == result.to_dict()["bars_written"]


def test_rerun_writes_identical_file(file_config: IngestionConfig) -> None:
    run_daily(DailyParams(None, None), file_config, ignore_progress)
    first = file_config.points_file.read_bytes()
    run_daily(DailyParams(None, None), file_config, ignore_progress)

    assert file_config.points_file.read_bytes() == first


def test_rerun_of_one_ticker_keeps_others(file_config: IngestionConfig) -> None:
    run_daily(DailyParams(None, None), file_config, ignore_progress)
    full = sorted(read_lines(file_config.points_file))
    run_daily(DailyParams(None, ("7203.T",)), file_config, ignore_progress)

    assert sorted(read_lines(file_config.points_file)) == full


def test_progress_error_keeps_previous_file(file_config: IngestionConfig) -> None:
    run_daily(DailyParams(datetime.date(2014, 1, 31), None), file_config, ignore_progress)
    before = file_config.points_file.read_bytes()

    def fail_on_second_ticker(progress: Progress) -> None:
        if progress.ticker == "7974.T":
            raise AbortRun("lease lost")

    with pytest.raises(AbortRun):
        run_daily(DailyParams(None, None), file_config, fail_on_second_ticker)

    assert file_config.points_file.read_bytes() == before
    assert list(file_config.points_file.parent.glob("*.tmp")) == []


def test_incremental_run_adds_only_new_bars(file_config: IngestionConfig) -> None:
    full_config = dataclasses.replace(
        file_config, points_file=file_config.points_file.with_name("full.lp")
    )
    run_daily(DailyParams(None, None), full_config, ignore_progress)
    config = dataclasses.replace(file_config, incremental=True)

    first = run_daily(DailyParams(datetime.date(2020, 12, 31), None), config, ignore_progress)
    second = run_daily(DailyParams(None, None), config, ignore_progress)
    third = run_daily(DailyParams(None, None), config, ignore_progress)

    full_lines = sorted(read_lines(full_config.points_file))
    assert sorted(read_lines(config.points_file)) == full_lines
    written = first.to_dict()["bars_written"] + second.to_dict()["bars_written"]
    assert written == len(full_lines)
    assert third.to_dict()["bars_written"] == 0
    assert all(item["first_day_written"] > "2020-12-31" for item in second.to_dict()["tickers"])


FUTURE_FILE = (
    "Date,Open,High,Low,Close,Volume\n2024-01-04,10,11,9,10.5,100\n2099-01-05,10,11,9,10.5,100\n"
)


def incremental_future_config(tmp_path: Path, file_config: IngestionConfig) -> IngestionConfig:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "7203.T.csv").write_text(FUTURE_FILE)
    return dataclasses.replace(file_config, market_data_dir=tmp_path / "data", incremental=True)


def stored_last_days(config: IngestionConfig) -> dict[str, str]:
    stored = json.loads(config.resolved_watermark_file().read_text(encoding="utf-8"))
    return stored["last_days"]


def tokyo_days(path: Path) -> list[datetime.date]:
    stamps = [parse_line(line).timestamp_s for line in read_lines(path)]
    return [datetime.datetime.fromtimestamp(stamp, tz=TOKYO).date() for stamp in stamps]


def test_future_bar_rejected(tmp_path: Path, file_config: IngestionConfig) -> None:
    config = incremental_future_config(tmp_path, file_config)

    first = run_daily(DailyParams(None, None), config, ignore_progress).to_dict()
    second = run_daily(DailyParams(None, None), config, ignore_progress).to_dict()

    assert first["rejected_by_reason"] == {"future_date": 1}
    assert first["bars_written"] == 1
    assert stored_last_days(config) == {"7203.T": "2024-01-04"}
    assert tokyo_days(config.points_file) == [datetime.date(2024, 1, 4)]
    assert second["bars_written"] == 0
    assert second["bars_skipped"] == 1


def test_future_state_from_older_run_dropped(tmp_path: Path, file_config: IngestionConfig) -> None:
    config = incremental_future_config(tmp_path, file_config)
    # What a run without the future-date check left: a point and a watermark in 2099.
    future_stamp = datetime.datetime(2099, 1, 5, 15, 0, tzinfo=TOKYO)
    config.points_file.parent.mkdir(parents=True)
    config.points_file.write_text(
        "daily_bars,exchange=TSE,ticker=7203.T close=10.5,high=11,low=9,open=10,volume=100i "
        f"{int(future_stamp.timestamp())}\n"
    )
    config.resolved_watermark_file().write_text(
        json.dumps(
            {
                "target": f"line-protocol file {config.points_file}",
                "measurement": "daily_bars",
                "last_days": {"7203.T": "2099-01-05", "9984.T": "2099-01-05"},
            }
        )
    )

    result = run_daily(DailyParams(None, None), config, ignore_progress).to_dict()

    assert result["bars_written"] == 1
    assert tokyo_days(config.points_file) == [datetime.date(2024, 1, 4)]
    assert stored_last_days(config) == {"7203.T": "2024-01-04"}
