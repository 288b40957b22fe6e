"""CSV layouts, encodings and per-file errors."""

from __future__ import annotations

import csv
import dataclasses
import datetime
from pathlib import Path

from ingestion.config import IngestionConfig
from ingestion.daily import DailyParams, run_daily
from ingestion.sources.csv_files import probe, read_bars
from tests.ingestion.conftest import REPO_ROOT, TEST_DATA_DIR
from tests.ingestion.helpers import NEW_YORK, TOKYO
from tests.ingestion.lineproto import parse_line

STOOQ_FILE = REPO_ROOT / "tests" / "data" / "stooq" / "aapl_us_d.csv"


def run_on(directory: Path, file_config: IngestionConfig, tickers: tuple | None = None) -> dict:
    config = dataclasses.replace(file_config, market_data_dir=directory)
    return run_daily(DailyParams(None, tickers), config, lambda progress: None).to_dict()


def points_by_day(points_file: Path, zone: datetime.tzinfo) -> dict[datetime.date, dict[str, str]]:
    points = {}
    for line in points_file.read_text(encoding="utf-8").splitlines():
        parsed = parse_line(line)
        stamp = datetime.datetime.fromtimestamp(parsed.timestamp_s, tz=zone)
        points[stamp.date()] = {**parsed.fields, **parsed.tags, "time": stamp.time().isoformat()}
    return points


def test_yfinance_columns_follow_header(tmp_path: Path) -> None:
    path = tmp_path / "7203.T.csv"
    path.write_text(
        "Price,Volume,Open,Close,Low,High,Adj Close\n"
        "Ticker,7203.T,7203.T,7203.T,7203.T,7203.T,7203.T\n"
        "Date,,,,,,\n"
        "2024-01-04,500,11.0,12.0,10.0,13.0,11.5\n"
    )
    bar = next(read_bars(probe(path)))

    assert (bar.open, bar.high, bar.low, bar.close) == (11.0, 13.0, 10.0, 12.0)
    assert bar.adj_close == 11.5
    assert bar.volume == 500


def test_yfinance_ticker_from_ticker_row(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Price,Close,High,Low,Open,Volume\nTicker,9984.T,9984.T,9984.T,9984.T,9984.T\n"
        "Date,,,,,\n2024-01-04,12.0,13.0,10.0,11.0,500\n"
    )
    assert probe(path).listing.ticker == "9984.T"


def test_stooq_file_values_and_ticker(file_config: IngestionConfig) -> None:
    result = run_on(STOOQ_FILE.parent, file_config)
    points = points_by_day(file_config.points_file, NEW_YORK)

    with STOOQ_FILE.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert result["tickers_done"] == ["AAPL"]
    assert len(points) == len(rows)
    for row in rows:
        point = points[datetime.date.fromisoformat(row["Date"])]
        assert point["ticker"] == "AAPL"
        assert point["exchange"] == "US"
        assert point["time"] == "16:00:00"
        for name in ("Open", "High", "Low", "Close"):
            assert float(point[name.lower()]) == float(row[name]), (row["Date"], name)
        assert point["volume"] == row["Volume"] + "i"
        assert "adj_close" not in point


def test_broker_utf8_bom_newest_first(file_config: IngestionConfig) -> None:
    result = run_on(TEST_DATA_DIR / "broker", file_config, ("6758",))
    points = points_by_day(file_config.points_file, TOKYO)

    assert result["tickers_done"] == ["6758.T"]
    assert result["bars_rejected"] == 0
    assert sorted(points) == [datetime.date(2024, 1, d) for d in (4, 5, 9, 10)]
    assert points[datetime.date(2024, 1, 5)]["open"] == "13010"
    assert points[datetime.date(2024, 1, 5)]["volume"] == "3456700i"


def test_broker_cp932_decimals(file_config: IngestionConfig) -> None:
    result = run_on(TEST_DATA_DIR / "broker", file_config, ("9433.T",))
    points = points_by_day(file_config.points_file, TOKYO)

    assert result["tickers_done"] == ["9433.T"]
    assert points[datetime.date(2024, 1, 10)]["open"] == "1234.5"
    assert points[datetime.date(2024, 1, 9)]["low"] == "1221.5"
    assert points[datetime.date(2024, 1, 10)]["volume"] == "45600000i"


def test_broker_newest_first_read_oldest_first() -> None:
    days = [bar.day for bar in read_bars(probe(TEST_DATA_DIR / "broker" / "6758.csv"))]
    assert days == sorted(days)


def test_unreadable_files_reported(file_config: IngestionConfig) -> None:
    result = run_on(TEST_DATA_DIR / "broken", file_config)

    errors = {item["source"]: item["error"] for item in result["source_errors"]}
    assert sorted(errors) == ["1111.T.csv", "2222.T.csv"]
    assert "NUL bytes" in errors["1111.T.csv"]
    assert "no column for date" in errors["2222.T.csv"]
    assert result["tickers_failed"] == ["3333.T"]
    assert result["tickers_done"] == ["4444.T"]
    failed = next(item for item in result["tickers"] if item["ticker"] == "3333.T")
    assert "invalid utf-8 byte sequence" in failed["error"]


PLAIN_HEADER = "Date,Open,High,Low,Close,Volume\n"
GOOD_ROW = "2024-01-04,10,11,9,10.5,100\n"


def test_cr_line_endings_reported(tmp_path: Path, file_config: IngestionConfig) -> None:
    (tmp_path / "AAPL.csv").write_bytes(
        b"Date,Open,High,Low,Close,Volume\r2024-01-04,10,11,9,10.5,100\r"
    )
    (tmp_path / "MSFT.csv").write_text(PLAIN_HEADER + GOOD_ROW)

    result = run_on(tmp_path, file_config, ("MSFT",))

    errors = {item["source"]: item["error"] for item in result["source_errors"]}
    assert list(errors) == ["AAPL.csv"]
    assert "line endings" in errors["AAPL.csv"]
    assert result["tickers_done"] == ["MSFT"]
    assert result["bars_written"] == 1


def test_huge_header_cell_reported(tmp_path: Path, file_config: IngestionConfig) -> None:
    (tmp_path / "AAPL.csv").write_text("Date," + "x" * 200_000 + ",Open\n" + GOOD_ROW)
    (tmp_path / "MSFT.csv").write_text(PLAIN_HEADER + GOOD_ROW)

    result = run_on(tmp_path, file_config)

    errors = {item["source"]: item["error"] for item in result["source_errors"]}
    assert list(errors) == ["AAPL.csv"]
    assert "invalid CSV" in errors["AAPL.csv"]
    assert result["tickers_done"] == ["MSFT"]


def test_huge_data_cell_fails_ticker(tmp_path: Path, file_config: IngestionConfig) -> None:
    huge_row = "2024-01-05,10,11,9," + "1" * 200_000 + ",100\n"
    (tmp_path / "AAPL.csv").write_text(PLAIN_HEADER + GOOD_ROW + huge_row)
    (tmp_path / "MSFT.csv").write_text(PLAIN_HEADER + GOOD_ROW)

    result = run_on(tmp_path, file_config)

    assert result["source_errors"] == []
    assert result["tickers_failed"] == ["AAPL"]
    assert result["tickers_done"] == ["MSFT"]
    failed = next(item for item in result["tickers"] if item["ticker"] == "AAPL")
    assert "invalid CSV" in failed["error"]


def test_header_without_line_break_reported(tmp_path: Path, file_config: IngestionConfig) -> None:
    (tmp_path / "AAPL.csv").write_bytes(b"x" * (2 * 1024 * 1024))
    (tmp_path / "MSFT.csv").write_text(PLAIN_HEADER + GOOD_ROW)

    result = run_on(tmp_path, file_config)

    errors = {item["source"]: item["error"] for item in result["source_errors"]}
    assert list(errors) == ["AAPL.csv"]
    assert "header line is longer than" in errors["AAPL.csv"]
    assert result["tickers_done"] == ["MSFT"]


def test_short_row_with_date_last(tmp_path: Path, file_config: IngestionConfig) -> None:
    (tmp_path / "AAPL.csv").write_text(
        "Open,High,Low,Close,Volume,Date\n"
        "1\n"
        "10,11,9,10.5,100,2024-01-04\n"
        "10,11,9,10.5,100,2024-01-05\n"
    )

    result = run_on(tmp_path, file_config)

    assert result["tickers_done"] == ["AAPL"]
    assert result["tickers_not_found"] == []
    assert result["bars_written"] == 2
    assert result["rejected_by_reason"] == {"short_row": 1}


def test_newest_first_with_duplicate_first_row(
    tmp_path: Path, file_config: IngestionConfig
) -> None:
    rows = [f"2024/01/{day},10,11,9,10.5,100\n" for day in ("10", "10", "09", "08", "05")]
    (tmp_path / "6758.csv").write_text(PLAIN_HEADER + "".join(rows))

    result = run_on(tmp_path, file_config)
    points = points_by_day(file_config.points_file, TOKYO)

    assert result["tickers_done"] == ["6758.T"]
    assert result["bars_written"] == 4
    assert result["rejected_by_reason"] == {"duplicate_date": 1}
    assert sorted(points) == [datetime.date(2024, 1, day) for day in (5, 8, 9, 10)]


DATE_FORMS = {
    "2024-01-04": datetime.date(2024, 1, 4),
    "2024/01/05": datetime.date(2024, 1, 5),
    "2024-01-09T00:00:00": datetime.date(2024, 1, 9),
    "2024-01-10 00:00:00+09:00": datetime.date(2024, 1, 10),
    "20240111": None,
    "2024-W02-5": None,
    "2024-012": None,
    "2024-1-15": None,
    "2024-01/16": None,
    "2024.01.17": None,
    "２０２４-01-18": None,
    "2024-02-30": None,
}


def test_date_forms_accepted_or_rejected(tmp_path: Path) -> None:
    rows = "".join(f"{text},10,11,9,10.5,100\n" for text in DATE_FORMS)
    (tmp_path / "AAPL.csv").write_text(PLAIN_HEADER + rows, encoding="utf-8")

    bars = list(read_bars(probe(tmp_path / "AAPL.csv")))

    assert [bar.date_text for bar in bars] == list(DATE_FORMS)
    for bar in bars:
        expected = DATE_FORMS[bar.date_text]
        assert bar.day == expected, bar.date_text
        assert bar.problem == (None if expected else "invalid_date"), bar.date_text
