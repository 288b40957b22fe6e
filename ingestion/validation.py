"""Row checks: each bar is accepted, accepted with flags, or rejected for one reason.

The verdict per reason, and why, is listed in docs/ingestion.md. In short: a bar that
breaks the OHLCV invariants (low <= open, close <= high, volume >= 0, prices > 0) or
that a vendor filled in for a day without trading is rejected, so stored points are
internally consistent. A bar that is consistent but unusual is written and flagged.
"""

from __future__ import annotations

import datetime
import statistics
from collections import deque
from dataclasses import dataclass, field

from ingestion.bars import Bar
from ingestion.calendars import TradingCalendars
from ingestion.markets import Market

# Price ratios of common splits (2:1, 3:1, 3:2, ...) and, inverted, of reverse splits.
SPLIT_FACTORS = (1.5, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 20.0)
SPLIT_RATIO_TOLERANCE = 0.05
# A split changes price and share count by inverse factors, so traded value
# (close * volume) stays near its usual level. A crash of the same size comes with a
# surge in traded value: AAPL on 2000-09-29 fell 51.8% on about 10x its usual value.
SPLIT_MAX_TRADED_VALUE_RATIO = 3.0
TRADED_VALUE_WINDOW = 20
TRADED_VALUE_MIN_HISTORY = 5
# Volume is written as a line-protocol integer field, which is a signed 64-bit integer.
# A larger value is not valid line protocol, so it must not reach a write batch.
MAX_VOLUME = 2**63 - 1
# A plausibility bound, not a storage limit: share prices in yen or dollars on the TSE
# and US exchanges stay far below it, so a larger value is a data error.
MAX_PRICE = 1e9


@dataclass(frozen=True)
class Verdict:
    """Outcome for one bar: `rejected` is a reason or None, `flags` apply to written bars."""

    rejected: str | None = None
    flags: tuple[str, ...] = ()
    detail: str = ""


@dataclass
class BarValidator:
    """Checks the bars of one ticker in date order; create one per ticker and run.

    `latest_day` is the market's current date: a bar dated later cannot have traded.
    """

    market: Market
    calendars: TradingCalendars
    latest_day: datetime.date
    _last_day_written: datetime.date | None = None
    _last_close: float | None = None
    _traded_values: deque[float] = field(default_factory=lambda: deque(maxlen=TRADED_VALUE_WINDOW))

    def check(self, bar: Bar) -> Verdict:
        verdict = self._check_values(bar) or self._check_order(bar) or self._check_day(bar)
        if verdict is not None and verdict.rejected is not None:
            return verdict
        flags = list(verdict.flags) if verdict is not None else []
        detail = verdict.detail if verdict is not None else ""
        split_detail = self._suspected_split(bar)
        if split_detail:
            flags.append("suspected_unadjusted_split")
            detail = "; ".join(part for part in (detail, split_detail) if part)
        self._remember(bar)
        return Verdict(flags=tuple(flags), detail=detail)

    def _check_values(self, bar: Bar) -> Verdict | None:
        if bar.problem is not None:
            return Verdict(rejected=bar.problem, detail=f"row {bar.date_text!r}")
        assert bar.open is not None
        assert bar.high is not None
        assert bar.low is not None
        assert bar.close is not None
        assert bar.volume is not None
        # adj_close is checked like the other prices but not against the day's range,
        # because dividend adjustment can put it below the low.
        prices = [bar.open, bar.high, bar.low, bar.close]
        if bar.adj_close is not None:
            prices.append(bar.adj_close)
        if min(prices) <= 0:
            return Verdict(rejected="non_positive_price", detail=f"price {min(prices)}")
        if max(prices) > MAX_PRICE:
            return Verdict(
                rejected="price_out_of_range", detail=f"price {max(prices)} above {MAX_PRICE:g}"
            )

        if bar.volume < 0:
            return Verdict(rejected="negative_volume", detail=f"volume {bar.volume}")
        if bar.volume > MAX_VOLUME:
            return Verdict(
                rejected="volume_out_of_range",
                detail=f"volume {bar.volume} above the int64 maximum {MAX_VOLUME}",
            )

        if bar.high < bar.low:
            return Verdict(rejected="high_below_low", detail=f"high {bar.high} < low {bar.low}")
        if not bar.low <= bar.open <= bar.high:
            return Verdict(
                rejected="open_outside_range",
                detail=f"open {bar.open} outside low {bar.low} .. high {bar.high}",
            )
        if not bar.low <= bar.close <= bar.high:
            return Verdict(
                rejected="close_outside_range",
                detail=f"close {bar.close} outside low {bar.low} .. high {bar.high}",
            )
        return None

    def _check_order(self, bar: Bar) -> Verdict | None:
        if bar.day is not None and bar.day > self.latest_day:
            # A written future bar would also move the watermark past every real bar to come.
            return Verdict(
                rejected="future_date",
                detail=f"after {self.latest_day}, today in {self.market.time_zone.key}",
            )
        last = self._last_day_written
        if last is None or bar.day is None:
            return None
        if bar.day == last:
            return Verdict(rejected="duplicate_date", detail="first valid row for the date is kept")
        if bar.day < last:
            return Verdict(rejected="out_of_order_date", detail=f"after {last}")
        return None

    def _check_day(self, bar: Bar) -> Verdict | None:
        assert bar.day is not None
        is_session = self.calendars.is_session(self.market, bar.day)
        flat = bar.open == bar.high == bar.low == bar.close
        if bar.volume == 0 and flat:
            reason = {
                False: "zero_volume_flat_on_holiday",
                True: "zero_volume_flat_on_trading_day",
                None: "zero_volume_flat",
            }[is_session]
            return Verdict(rejected=reason, detail=f"price {bar.close}, volume 0")
        flags = []
        if is_session is False:
            flags.append("non_trading_day")
        if bar.volume == 0:
            flags.append("zero_volume")
        elif flat:
            # Real on a limit-up or limit-down day, but on a liquid stock more often a
            # bar that a vendor filled from a single trade.
            flags.append("flat_bar_with_volume")
        if not flags:
            return None
        return Verdict(flags=tuple(flags), detail=f"close {bar.close}, volume {bar.volume}")

    def _suspected_split(self, bar: Bar) -> str:
        if self._last_close is None:
            return ""
        assert bar.close is not None and bar.volume is not None
        ratio = bar.close / self._last_close
        factor = _matching_split_factor(ratio)
        if factor is None:
            return ""
        if len(self._traded_values) >= TRADED_VALUE_MIN_HISTORY:
            usual_value = statistics.median(self._traded_values)
            if usual_value > 0:
                value_ratio = bar.close * bar.volume / usual_value
                if value_ratio > SPLIT_MAX_TRADED_VALUE_RATIO:
                    return ""
        return f"close/previous close {ratio:.4f} matches a {factor:g} split"

    def _remember(self, bar: Bar) -> None:
        assert bar.close is not None and bar.volume is not None
        self._last_day_written = bar.day
        self._last_close = bar.close
        self._traded_values.append(bar.close * bar.volume)


def _matching_split_factor(ratio: float) -> float | None:
    for factor in SPLIT_FACTORS:
        if abs(ratio * factor - 1) <= SPLIT_RATIO_TOLERANCE:
            return factor
        if abs(ratio / factor - 1) <= SPLIT_RATIO_TOLERANCE:
            return 1 / factor
    return None
