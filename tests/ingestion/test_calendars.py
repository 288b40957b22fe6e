"""Trading-day lookups at and beyond the ends of exchange-calendars' range."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from ingestion.calendars import TradingCalendars
from ingestion.config import IngestionConfig
from ingestion.daily import DailyParams, run_daily
from ingestion.markets import TOKYO, US


def test_last_day_before_first_is_unknown() -> None:
    calendars = TradingCalendars(last_day=datetime.date(1995, 6, 30))

    assert calendars.is_session(TOKYO, datetime.date(1995, 6, 30)) is None
    assert calendars.is_session(TOKYO, datetime.date(1997, 1, 6)) is None
    assert calendars.is_session(US, datetime.date(1995, 6, 30)) is True


def test_last_day_beyond_pandas_range() -> None:
    calendars = TradingCalendars(last_day=datetime.date(2262, 5, 1))

    assert calendars.is_session(TOKYO, datetime.date(2024, 1, 4)) is True
    assert calendars.is_session(TOKYO, datetime.date(2024, 1, 1)) is False
    assert calendars.is_session(US, datetime.date(2262, 4, 30)) is None
    assert calendars.is_session(US, datetime.date(9999, 12, 31)) is None


@pytest.mark.parametrize(
    "trading_day", [datetime.date(1995, 6, 30), datetime.date(2262, 5, 1)], ids=str
)
def test_run_with_day_outside_calendar(
    tmp_path: Path, file_config: IngestionConfig, trading_day: datetime.date
) -> None:
    (tmp_path / "7203.T.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "1995-06-29,10,11,9,10.5,100\n"
        "1995-06-30,10,11,9,10.5,100\n"
        "2024-01-04,10,11,9,10.5,100\n"
    )
    config = dataclasses.replace(file_config, market_data_dir=tmp_path)

    result = run_daily(DailyParams(trading_day, None), config, lambda progress: None).to_dict()

    assert result["tickers_done"] == ["7203.T"]
    assert result["rejected_by_reason"] == {}
    expected_written = 2 if trading_day.year == 1995 else 3
    assert result["bars_written"] == expected_written


def test_last_day_equal_to_first() -> None:
    calendars = TradingCalendars(last_day=TOKYO.calendar_first_day)

    assert calendars.is_session(TOKYO, TOKYO.calendar_first_day) is None
