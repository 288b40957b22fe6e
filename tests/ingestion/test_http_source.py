"""The HTTP quotes source, served by respx: data, errors and retries."""

from __future__ import annotations

import dataclasses
import datetime

import httpx
import pytest
import respx

from ingestion.config import HttpSourceConfig, IngestionConfig
from ingestion.daily import DailyParams, run_daily
from ingestion.errors import PermanentIngestionError, TransientIngestionError
from tests.ingestion.helpers import NEW_YORK
from tests.ingestion.lineproto import parse_line

# A host under the reserved .test domain, so nothing can reach a real quotes service.
URL_TEMPLATE = "http://quotes.test/q/d/l/?s={symbol}&i=d"
CSV_BODY = (
    "Date,Open,High,Low,Close,Volume\n"
    "2024-01-03,184.22,185.88,183.43,184.25,58414460\n"
    "2024-01-04,182.15,183.09,180.88,181.91,71983570\n"
)


def http_config(file_config: IngestionConfig, attempts: int = 3) -> IngestionConfig:
    source = HttpSourceConfig(
        url_template=URL_TEMPLATE, timeout_s=1.0, max_attempts=attempts, backoff_s=0.0
    )
    return dataclasses.replace(file_config, http_source=source)


def run(config: IngestionConfig, *tickers: str) -> dict:
    return run_daily(DailyParams(None, tickers), config, lambda progress: None).to_dict()


@respx.mock
def test_http_bars_written(file_config: IngestionConfig) -> None:
    route = respx.get("http://quotes.test/q/d/l/", params={"s": "brk-b.us"}).respond(
        200, text=CSV_BODY
    )
    config = http_config(file_config)

    result = run(config, "BRK-B")

    assert route.call_count == 1
    assert result["tickers_done"] == ["BRK.B"]
    lines = [parse_line(line) for line in config.points_file.read_text().splitlines()]
    assert [line.fields["close"] for line in lines] == ["184.25", "181.91"]
    days = [datetime.datetime.fromtimestamp(line.timestamp_s, tz=NEW_YORK).date() for line in lines]
    assert days == [datetime.date(2024, 1, 3), datetime.date(2024, 1, 4)]


@respx.mock
@pytest.mark.parametrize("status", [429, 500, 503])
def test_http_retries_then_succeeds(file_config: IngestionConfig, status: int) -> None:
    route = respx.get("http://quotes.test/q/d/l/").mock(
        side_effect=[
            httpx.Response(status, headers={"Retry-After": "0"}),
            httpx.Response(200, text=CSV_BODY),
        ]
    )
    result = run(http_config(file_config), "AAPL")

    assert route.call_count == 2
    assert result["bars_written"] == 2


@respx.mock
def test_http_server_errors_are_transient(file_config: IngestionConfig) -> None:
    route = respx.get("http://quotes.test/q/d/l/").respond(502)

    with pytest.raises(TransientIngestionError, match="AAPL.*3 attempts.*HTTP 502"):
        run(http_config(file_config), "AAPL")
    assert route.call_count == 3


@respx.mock
def test_http_timeout_is_transient(file_config: IngestionConfig) -> None:
    route = respx.get("http://quotes.test/q/d/l/").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(TransientIngestionError, match="quotes.test"):
        run(http_config(file_config, attempts=2), "7203.T")
    assert route.call_count == 2
    assert not file_config.points_file.exists()


@respx.mock
def test_http_html_body_fails_ticker(file_config: IngestionConfig) -> None:
    respx.get("http://quotes.test/q/d/l/", params={"s": "aapl.us"}).respond(
        200,
        text="<!DOCTYPE html><html><body>Service unavailable</body></html>",
        headers={"Content-Type": "text/html"},
    )
    respx.get("http://quotes.test/q/d/l/", params={"s": "msft.us"}).respond(200, text=CSV_BODY)

    result = run(http_config(file_config), "AAPL", "MSFT")

    assert result["tickers_failed"] == ["AAPL"]
    assert result["tickers_done"] == ["MSFT"]
    assert "HTML" in result["tickers"][0]["error"]


@respx.mock
def test_http_no_data_is_not_found(file_config: IngestionConfig) -> None:
    respx.get("http://quotes.test/q/d/l/").respond(200, text="No data")

    result = run(http_config(file_config), "ZZZZ")

    assert result["tickers_not_found"] == ["ZZZZ"]


def test_http_source_needs_tickers(file_config: IngestionConfig) -> None:
    with pytest.raises(PermanentIngestionError, match="cannot list"):
        run_daily(DailyParams(None, None), http_config(file_config), lambda progress: None)


@respx.mock
def test_http_huge_cell_fails_ticker(file_config: IngestionConfig) -> None:
    huge_body = CSV_BODY + "2024-01-05,10,11,9," + "1" * 200_000 + ",100\n"
    respx.get("http://quotes.test/q/d/l/", params={"s": "aapl.us"}).respond(200, text=huge_body)
    respx.get("http://quotes.test/q/d/l/", params={"s": "msft.us"}).respond(200, text=CSV_BODY)

    result = run(http_config(file_config), "AAPL", "MSFT")

    assert result["tickers_failed"] == ["AAPL"]
    assert result["tickers_done"] == ["MSFT"]
    failed = next(item for item in result["tickers"] if item["ticker"] == "AAPL")
    assert "invalid CSV" in failed["error"]
