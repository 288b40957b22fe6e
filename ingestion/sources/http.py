"""Daily bars from an HTTP endpoint that serves Stooq's CSV download format.

Responses are read line by line. 429, 5xx, timeouts and connection errors are retried
with backoff (honouring Retry-After up to a cap) and then raise
TransientIngestionError. A body that is not CSV, such as an HTML error page, fails
only that ticker. A body of "No data" is how Stooq answers for an unknown symbol, so
the ticker is reported as not found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from ingestion.bars import Bar
from ingestion.config import HttpSourceConfig
from ingestion.errors import (
    SourceFileError,
    TickerNotFoundError,
    TransientIngestionError,
)
from ingestion.markets import Listing, stooq_symbol
from ingestion.sources.parsing import ColumnMap, bar_from_row, split_csv_line

logger = logging.getLogger(__name__)

_NO_DATA_BODY = "no data"


class HttpSource:
    """Fetches one CSV document per ticker; it cannot list tickers by itself."""

    def __init__(self, config: HttpSourceConfig) -> None:
        self.config = config
        self.description = f"HTTP source {urlsplit(config.url_template).netloc}"
        self.problems: dict[str, str] = {}

    def available(self) -> list[Listing] | None:
        return None

    def source_name(self, listing: Listing) -> str:
        return self._url(listing)

    def bars(self, listing: Listing) -> Iterator[Bar]:
        url = self._url(listing)
        with httpx.Client(timeout=self.config.timeout_s) as client:
            response = self._get(client, url, listing)
            try:
                yield from self._parse(response, url)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                raise TransientIngestionError(
                    f"{self.description}: reading quotes of {listing.ticker} failed: {exc!r}"
                ) from exc
            finally:
                response.close()

    def _url(self, listing: Listing) -> str:
        return self.config.url_template.format(symbol=stooq_symbol(listing))

    def _get(self, client: httpx.Client, url: str, listing: Listing) -> httpx.Response:
        attempts = max(1, self.config.max_attempts)
        for attempt in range(1, attempts + 1):
            delay_s = self.config.backoff_s * 2 ** (attempt - 1)
            try:
                response = client.send(client.build_request("GET", url), stream=True)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = repr(exc)
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return self._check_status(response, url, listing)
                problem = f"HTTP {response.status_code}"
                delay_s = self._retry_after_s(response, delay_s)
                response.close()
            if attempt == attempts:
                raise TransientIngestionError(
                    f"{self.description}: quotes of {listing.ticker} failed after "
                    f"{attempts} attempts: {problem}"
                )
            logger.warning(
                "market source request failed, retrying",
                extra={
                    "ticker": listing.ticker,
                    "attempt": attempt,
                    "delay_s": delay_s,
                    "error": problem,
                },
            )
            time.sleep(delay_s)
        raise AssertionError("unreachable")

    def _check_status(self, response: httpx.Response, url: str, listing: Listing) -> httpx.Response:
        if response.status_code == 404:
            response.close()
            raise TickerNotFoundError(listing.ticker)
        if response.status_code >= 400:
            response.close()
            raise SourceFileError(f"{url}: HTTP {response.status_code}")
        return response

    def _retry_after_s(self, response: httpx.Response, default_s: float) -> float:
        header = response.headers.get("Retry-After")
        try:
            seconds = float(header) if header is not None else default_s
        except ValueError:
            # Retry-After may also be an HTTP-date. That form is not parsed, so backoff applies.
            seconds = default_s
        return min(max(seconds, 0.0), self.config.max_retry_after_s)

    def _parse(self, response: httpx.Response, url: str) -> Iterator[Bar]:
        lines = (line for line in response.iter_lines() if line.strip())
        header = next(lines, "")
        if header.strip().lower().startswith(_NO_DATA_BODY):
            raise TickerNotFoundError(url)
        if header.lstrip().startswith("<"):
            raise SourceFileError(f"{url}: response is HTML, not CSV quotes")
        columns = ColumnMap.from_header(split_csv_line(header, url), url)
        for line in lines:
            yield bar_from_row(split_csv_line(line, url), columns)
