"""Markets, their trading calendars and the canonical ticker form.

Canonical tickers:
- Tokyo: the 4-character TSE code with `.T`, e.g. `7203.T` (also accepted: `7203`,
  `7203.JP`, `7203.t`, and the alphanumeric codes issued since 2024 such as `130A`).
- US: the upper-case symbol with a dot before the share class, e.g. `AAPL`, `BRK.B`
  (also accepted: `aapl`, `AAPL.US`, `BRK-B`, `BRK/B`, `brk-b.us`).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Market:
    """A market: the value of the `exchange` tag, its calendar and its time stamp rule."""

    code: str
    calendar_code: str
    time_zone: ZoneInfo
    # Every bar is stamped at this local time on its trading day. It is a fixed stamp,
    # not the real close of that day (the TSE moved its close from 15:00 to 15:30 in
    # November 2024), so that a re-run always produces the same timestamp.
    session_close: datetime.time
    stooq_suffix: str
    # First day the trading-day check covers. exchange-calendars 4.13 builds XTKS from
    # 1997-01-01 at the earliest; XNYS can go further back, 1980 covers the bundled data.
    calendar_first_day: datetime.date

    def bar_timestamp(self, day: datetime.date) -> datetime.datetime:
        return datetime.datetime.combine(day, self.session_close, tzinfo=self.time_zone)

    def today(self, now: datetime.datetime) -> datetime.date:
        """Return the date in the market's time zone at the aware instant `now`."""
        return now.astimezone(self.time_zone).date()


TOKYO = Market(
    code="TSE",
    calendar_code="XTKS",
    time_zone=ZoneInfo("Asia/Tokyo"),
    session_close=datetime.time(15, 0),
    stooq_suffix="jp",
    calendar_first_day=datetime.date(1997, 1, 1),
)
US = Market(
    code="US",
    calendar_code="XNYS",
    time_zone=ZoneInfo("America/New_York"),
    session_close=datetime.time(16, 0),
    stooq_suffix="us",
    calendar_first_day=datetime.date(1980, 1, 1),
)
MARKETS = {market.code: market for market in (TOKYO, US)}


def latest_market_day(now: datetime.datetime) -> datetime.date:
    """Return the latest of the markets' current dates at `now`."""
    return max(market.today(now) for market in MARKETS.values())


def latest_bar_timestamp(now: datetime.datetime) -> datetime.datetime:
    """Return the latest timestamp that a bar dated today in its market can have at `now`.

    With the Tokyo and New York stamps (06:00 and 20:00 or 21:00 UTC), every bar dated
    after today in its own market is stamped later than this.
    """
    return max(market.bar_timestamp(market.today(now)) for market in MARKETS.values())


@dataclass(frozen=True, order=True)
class Listing:
    """A canonical ticker and the market it trades on."""

    ticker: str
    market_code: str

    @property
    def market(self) -> Market:
        return MARKETS[self.market_code]


_TOKYO_CODE = re.compile(r"^[0-9]{3}[0-9A-Z]$")
_US_SYMBOL = re.compile(r"^(?P<root>[A-Z]{1,6})(?:[.\-/](?P<share_class>[A-Z]{1,2}))?$")
_TOKYO_SUFFIXES = (".T", ".JP")
_US_SUFFIXES = (".US",)


def normalize_ticker(raw: str) -> Listing:
    """Map a ticker in any accepted spelling to its canonical Listing.

    Raises ValueError when the text is neither a Tokyo code nor a US symbol.
    """
    # Checked before upper(): it maps some non-ASCII letters to ASCII ones ("ß" to "SS").
    if not raw.isascii():
        raise ValueError(f"invalid ticker {raw!r}: expected ASCII letters and digits")
    text = raw.strip().upper()
    for suffix in _TOKYO_SUFFIXES:
        if text.endswith(suffix):
            return _tokyo_listing(text.removesuffix(suffix), raw)
    for suffix in _US_SUFFIXES:
        if text.endswith(suffix):
            return _us_listing(text.removesuffix(suffix), raw)
    if text[:1].isdigit():
        return _tokyo_listing(text, raw)
    return _us_listing(text, raw)


def _tokyo_listing(code: str, raw: str) -> Listing:
    if not _TOKYO_CODE.match(code):
        raise ValueError(f"invalid Tokyo ticker {raw!r}: expected a 4-character code like 7203.T")
    return Listing(f"{code}.T", TOKYO.code)


def _us_listing(symbol: str, raw: str) -> Listing:
    match = _US_SYMBOL.match(symbol)
    if match is None:
        raise ValueError(
            f"invalid ticker {raw!r}: expected a US symbol like BRK.B or a code like 7203.T"
        )
    share_class = match.group("share_class")
    ticker = match.group("root") if share_class is None else f"{match.group('root')}.{share_class}"
    return Listing(ticker, US.code)


_STOOQ_FILE_STEM = re.compile(r"^(?P<symbol>.+)_(?P<suffix>us|jp)_d$", re.IGNORECASE)


def listing_from_file_stem(stem: str) -> Listing:
    """Map a data file name without `.csv` to a Listing.

    Accepts ticker spellings (`7203.T`, `BRK-B`) and Stooq's download names
    (`aapl_us_d` for AAPL.US). Raises ValueError otherwise.
    """
    match = _STOOQ_FILE_STEM.match(stem)
    if match is not None:
        return normalize_ticker(f"{match.group('symbol')}.{match.group('suffix')}")
    return normalize_ticker(stem)


def stooq_symbol(listing: Listing) -> str:
    """Return the symbol Stooq uses for a listing: `aapl.us`, `7203.jp`, `brk-b.us`."""
    market = listing.market
    base = listing.ticker.removesuffix(".T") if market is TOKYO else listing.ticker
    return f"{base.replace('.', '-').lower()}.{market.stooq_suffix}"
