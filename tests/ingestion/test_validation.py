"""Per-defect checks on small hand-made files and on the real Stooq AAPL history."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from ingestion.bars import Bar
from ingestion.calendars import TradingCalendars
from ingestion.config import InfluxTarget, IngestionConfig
from ingestion.daily import DailyParams, run_daily
from ingestion.markets import TOKYO as TOKYO_MARKET
from ingestion.markets import US
from ingestion.validation import BarValidator
from tests.ingestion.conftest import REPO_ROOT, TEST_DATA_DIR
from tests.ingestion.helpers import NEW_YORK, TOKYO
from tests.ingestion.lineproto import parse_line
from tests.servers import VictoriaMetrics

# Expected verdict for every row of data/defects/1301.T.csv, by its date text.
DEFECT_ROWS = {
    "2017-12-28": "written",
    "2017-12-29": "written",
    "2018-01-01": "zero_volume_flat_on_holiday",
    "2018-01-04": "written",
    "2018-01-05": "high_below_low",
    "2018-01-09": "open_outside_range",
    "2018-01-10": "close_outside_range",
    "2018-01-11": "negative_volume",
    "2018-01-12": "missing_value",
    "2018-01-15": "missing_value",
    "2018-01-17": "zero_volume_flat_on_trading_day",
    "2018-01-18": "flat_bar_with_volume",
    "2018-01-21": "non_trading_day",
    "2018-01-19": "out_of_order_date",
    "2018-01-22": "zero_volume",
    "2018-01-23": "missing_value",
    "2018-13-01": "invalid_date",
    "2018-01-25": "non_positive_price",
    "2018-01-26": "written",
}
FLAGS = {"flat_bar_with_volume", "non_trading_day", "zero_volume"}


def run_on(directory: Path, file_config: IngestionConfig, **changes: object) -> dict:
    config = dataclasses.replace(file_config, market_data_dir=directory, **changes)
    return run_daily(DailyParams(None, None), config, lambda progress: None).to_dict()


def read_lines(config: IngestionConfig) -> list[str]:
    return config.points_file.read_text(encoding="utf-8").splitlines()


def written_days(points_file: Path, zone: datetime.tzinfo) -> list[datetime.date]:
    lines = points_file.read_text(encoding="utf-8").splitlines()
    return [
        datetime.datetime.fromtimestamp(parse_line(line).timestamp_s, tz=zone).date()
        for line in lines
    ]


def test_defect_reasons_counted(file_config: IngestionConfig) -> None:
    result = run_on(TEST_DATA_DIR / "defects", file_config)

    rejected = [v for v in DEFECT_ROWS.values() if v != "written" and v not in FLAGS]
    expected_rejected = {reason: rejected.count(reason) for reason in set(rejected)}
    # The second 2018-01-16 row is a duplicate; the first one is written.
    expected_rejected["duplicate_date"] = 1
    assert result["rejected_by_reason"] == expected_rejected
    assert result["flagged_by_reason"] == {flag: 1 for flag in FLAGS}
    assert result["bars_rejected"] == sum(expected_rejected.values())


def test_defect_rows_written_or_not(file_config: IngestionConfig) -> None:
    run_on(TEST_DATA_DIR / "defects", file_config)

    expected = sorted(
        datetime.date.fromisoformat(day)
        for day, verdict in DEFECT_ROWS.items()
        if verdict == "written" or verdict in FLAGS
    ) + [datetime.date(2018, 1, 16)]
    assert sorted(written_days(file_config.points_file, TOKYO)) == sorted(expected)


def test_defect_samples_name_rows(file_config: IngestionConfig) -> None:
    result = run_on(TEST_DATA_DIR / "defects", file_config)

    samples = {(s["date"], s["reason"]) for s in result["rejected_samples"]}
    assert ("2018-01-05", "high_below_low") in samples
    assert ("2018-01-16", "duplicate_date") in samples
    assert all(s["ticker"] == "1301.T" for s in result["rejected_samples"])


def test_sample_bounded(file_config: IngestionConfig) -> None:
    result = run_on(TEST_DATA_DIR / "defects", file_config, max_samples=3)

    assert len(result["rejected_samples"]) == 3
    assert sum(result["rejected_by_reason"].values()) == result["bars_rejected"]


def test_real_sample_defects_reported(file_config: IngestionConfig) -> None:
    result = run_daily(DailyParams(None, None), file_config, lambda progress: None).to_dict()

    assert result["rejected_by_reason"] == {
        "close_outside_range": 1,
        "zero_volume_flat_on_holiday": 4 * 22,
        "zero_volume_flat_on_trading_day": 4 * 2,
    }
    samples = {(s["ticker"], s["date"], s["reason"]) for s in result["rejected_samples"]}
    assert ("8306.T", "2022-05-17", "close_outside_range") in samples
    assert ("9984.T", "2015-12-25", "zero_volume_flat_on_trading_day") in samples
    assert ("7974.T", "2016-07-11", "zero_volume_flat_on_trading_day") in samples


def test_stooq_aapl_crash_not_split(file_config: IngestionConfig) -> None:
    result = run_on(REPO_ROOT / "tests" / "data" / "stooq", file_config)

    assert result["tickers_done"] == ["AAPL"]
    assert "suspected_unadjusted_split" not in result["flagged_by_reason"]
    assert result["rejected_by_reason"] == {}
    assert datetime.date(2000, 9, 29) in written_days(file_config.points_file, NEW_YORK)
    # NYSE closed for Hurricane Gloria; AAPL traded on NASDAQ, so the bar is kept.
    assert {(s["date"], s["reason"]) for s in result["flagged_samples"]} >= {
        ("1985-09-27", "non_trading_day")
    }


def make_bar(day: datetime.date, close: float, volume: int) -> Bar:
    return Bar(day.isoformat(), day, close, close * 1.01, close * 0.99, close, volume)


def validate_series(bars: list[Bar]) -> list[tuple[str, ...]]:
    validator = BarValidator(
        US,
        TradingCalendars(last_day=datetime.date(2024, 12, 31)),
        latest_day=datetime.date(2024, 12, 31),
    )
    return [validator.check(bar).flags for bar in bars]


def trading_days(count: int) -> list[datetime.date]:
    days, day = [], datetime.date(2024, 3, 1)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += datetime.timedelta(days=1)
    return days


def test_unadjusted_split_is_flagged() -> None:
    days = trading_days(12)
    bars = [make_bar(day, 100.0, 1_000_000) for day in days[:10]]
    # A 2:1 split left unadjusted: half the price, twice the shares, same traded value.
    bars += [make_bar(day, 50.0, 2_000_000) for day in days[10:]]

    flags = validate_series(bars)

    assert "suspected_unadjusted_split" in flags[10]
    assert "suspected_unadjusted_split" not in flags[11]


def test_crash_with_value_surge_not_flagged() -> None:
    days = trading_days(11)
    bars = [make_bar(day, 100.0, 1_000_000) for day in days[:10]]
    bars.append(make_bar(days[10], 50.0, 16_000_000))

    assert "suspected_unadjusted_split" not in validate_series(bars)[10]


INT64_MAX = 2**63 - 1
# Rows of a plain file with an Adj Close column, and the verdict for each.
VALUE_RANGE_ROWS = [
    ("2024-01-02,10,11,9,10.5,10.4," + str(INT64_MAX), "written"),
    ("2024-01-03,10,11,9,10.5,10.4," + str(INT64_MAX + 1), "volume_out_of_range"),
    ("2024-01-04,10,11,9,10.5,10.4,1e30", "volume_out_of_range"),
    ("2024-01-05,10,11,9,inf,10.4,100", "missing_value"),
    ("2024-01-08,-inf,11,9,10.5,10.4,100", "missing_value"),
    ("2024-01-09,10,1e400,9,10.5,10.4,100", "missing_value"),
    ("2024-01-10,1.5e9,2e9,1.2e9,1.6e9,1.6e9,100", "price_out_of_range"),
    ("2024-01-11,10,11,9,10.5,-1,100", "non_positive_price"),
    ("2024-01-12,10,11,9,10.5,0,100", "non_positive_price"),
    ("2024-01-16,10,11,9,10.5,,100", "missing_value"),
    ("2024-01-17,10,11,9,10.5,nan,100", "missing_value"),
    ("2024-01-18,10,11,9,10.5,2e9,100", "price_out_of_range"),
    # Adjusted for dividends, adj_close may lie below the day's low.
    ("2024-01-19,10,11,9,10.5,8.5,100", "written"),
]


def write_value_range_file(directory: Path) -> None:
    rows = "".join(row + "\n" for row, _ in VALUE_RANGE_ROWS)
    (directory / "AAPL.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + rows)


def test_value_ranges_rejected(tmp_path: Path, file_config: IngestionConfig) -> None:
    write_value_range_file(tmp_path)

    result = run_on(tmp_path, file_config)

    verdicts = [verdict for _, verdict in VALUE_RANGE_ROWS if verdict != "written"]
    assert result["rejected_by_reason"] == {v: verdicts.count(v) for v in set(verdicts)}
    assert written_days(file_config.points_file, NEW_YORK) == [
        datetime.date(2024, 1, 2),
        datetime.date(2024, 1, 19),
    ]
    volumes = [parse_line(line).fields["volume"] for line in read_lines(file_config)]
    assert volumes == [f"{INT64_MAX}i", "100i"]


def test_value_ranges_read_back(
    tmp_path: Path,
    influx_target: InfluxTarget,
    victoria_metrics: VictoriaMetrics,
    measurement: str,
    file_config: IngestionConfig,
) -> None:
    write_value_range_file(tmp_path)

    result = run_on(tmp_path, file_config, influx=influx_target, measurement=measurement)
    stored = victoria_metrics.export(measurement)

    assert result["bars_written"] == 2
    assert len(stored[("AAPL", "close")]) == 2
    assert len(stored[("AAPL", "volume")]) == 2
    assert min(stored[("AAPL", "adj_close")].values()) == 8.5


def test_bar_after_latest_day_rejected() -> None:
    latest_day = datetime.date(2024, 1, 5)
    calendars = TradingCalendars(last_day=latest_day)
    validator = BarValidator(TOKYO_MARKET, calendars, latest_day=latest_day)

    today = validator.check(make_bar(latest_day, 100.0, 1000))
    tomorrow = validator.check(make_bar(datetime.date(2024, 1, 6), 100.0, 1000))

    assert today.rejected is None
    assert tomorrow.rejected == "future_date"
    assert "2024-01-05" in tomorrow.detail
