"""Ticker normalisation, time stamps, tag escaping and the universe file."""

from __future__ import annotations

import datetime

import pytest

from ingestion.bars import Bar
from ingestion.config import default_universe_file
from ingestion.markets import (
    TOKYO,
    US,
    Listing,
    latest_bar_timestamp,
    latest_market_day,
    listing_from_file_stem,
    normalize_ticker,
    stooq_symbol,
)
from ingestion.points import bar_to_point
from ingestion.universe import read_universe
from tests.servers import VictoriaMetrics


@pytest.mark.parametrize(
    ("raw", "ticker", "market"),
    [
        ("7203", "7203.T", "TSE"),
        ("7203.T", "7203.T", "TSE"),
        ("7203.JP", "7203.T", "TSE"),
        (" 7203.t ", "7203.T", "TSE"),
        ("130a", "130A.T", "TSE"),
        ("AAPL", "AAPL", "US"),
        ("aapl.us", "AAPL", "US"),
        ("BRK.B", "BRK.B", "US"),
        ("BRK-B", "BRK.B", "US"),
        ("brk/b", "BRK.B", "US"),
        ("brk-b.us", "BRK.B", "US"),
    ],
)
def test_normalize_ticker(raw: str, ticker: str, market: str) -> None:
    assert normalize_ticker(raw) == Listing(ticker, market)


@pytest.mark.parametrize(
    "raw",
    ["", "72 03", "ABC.T", "12345", "A,B", "TOOLONGNAME", "X=Y", "\u00df", "\ufb00", "\uff21"],
)
def test_normalize_ticker_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_ticker(raw)


@pytest.mark.parametrize(
    ("stem", "ticker"),
    [("aapl_us_d", "AAPL"), ("brk-b_us_d", "BRK.B"), ("7203_jp_d", "7203.T"), ("7203.T", "7203.T")],
)
def test_listing_from_file_stem(stem: str, ticker: str) -> None:
    assert listing_from_file_stem(stem).ticker == ticker


def test_stooq_symbols() -> None:
    assert stooq_symbol(normalize_ticker("BRK.B")) == "brk-b.us"
    assert stooq_symbol(normalize_ticker("7203.T")) == "7203.jp"


@pytest.mark.parametrize(
    ("market", "utc_hour"),
    # New York is UTC-5 in January and UTC-4 in July; Tokyo has no daylight saving.
    [(TOKYO, {1: 6, 7: 6}), (US, {1: 21, 7: 20})],
)
def test_bar_timestamp_same_date_in_utc(market: object, utc_hour: dict[int, int]) -> None:
    for month, hour in utc_hour.items():
        day = datetime.date(2024, month, 10)
        stamp = market.bar_timestamp(day)  # type: ignore[attr-defined]
        in_utc = stamp.astimezone(datetime.UTC)
        assert in_utc.date() == day
        assert in_utc.hour == hour


def escaped_point_line(ticker: str, measurement: str = "daily_bars") -> str:
    bar = Bar("2024-01-04", datetime.date(2024, 1, 4), 1.0, 2.0, 0.5, 1.5, 10)
    point = bar_to_point(measurement, Listing(ticker, "TSE"), bar)
    return point.to_line_protocol()


def test_tag_escaping_in_line_protocol() -> None:
    line = escaped_point_line("A B,C=D.E")
    assert line.startswith("daily_bars,exchange=TSE,ticker=A\\ B\\,C\\=D.E ")
    assert line.endswith(" 1704348000")


def test_escaped_tag_read_back(victoria_metrics: VictoriaMetrics, measurement: str) -> None:
    import httpx

    ticker = "A B,C=D.E"
    response = httpx.post(
        f"{victoria_metrics.url}/api/v2/write",
        params={"precision": "s"},
        content=escaped_point_line(ticker, measurement).encode(),
    )
    response.raise_for_status()

    labels = victoria_metrics.labels(measurement)
    assert {label["ticker"] for label in labels} == {ticker}


def test_universe_share_classes() -> None:
    listings = read_universe(default_universe_file())
    tickers = [listing.ticker for listing in listings]

    assert len(tickers) == 503
    assert len(set(tickers)) == 503
    assert {"BRK.B", "BF.B", "MMM"} <= set(tickers)
    assert {listing.market_code for listing in listings} == {"US"}


def test_market_today_per_time_zone() -> None:
    # 16:00 UTC is already the next day in Tokyo but still the same day in New York.
    now = datetime.datetime(2024, 1, 4, 16, 0, tzinfo=datetime.UTC)

    assert TOKYO.today(now) == datetime.date(2024, 1, 5)
    assert US.today(now) == datetime.date(2024, 1, 4)
    assert latest_market_day(now) == datetime.date(2024, 1, 5)


@pytest.mark.parametrize("month", [1, 7])
@pytest.mark.parametrize("utc_hour", [0, 5, 15, 16, 20, 21, 23])
def test_latest_bar_timestamp_splits_today(month: int, utc_hour: int) -> None:
    now = datetime.datetime(2024, month, 4, utc_hour, 0, tzinfo=datetime.UTC)
    latest = latest_bar_timestamp(now)

    for market in (TOKYO, US):
        today = market.today(now)
        assert market.bar_timestamp(today) <= latest, (market.code, today)
        tomorrow = today + datetime.timedelta(days=1)
        assert market.bar_timestamp(tomorrow) > latest, (market.code, tomorrow)
