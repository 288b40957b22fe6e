"""The outcome of a run, stored by the app as the job's `result` JSON."""

from __future__ import annotations

import datetime
import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_SAMPLES_PER_REASON = 10


class TickerStatus(enum.StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"
    FAILED = "failed"


@dataclass(frozen=True)
class BarSample:
    """One rejected or flagged bar, kept as an example in the result."""

    ticker: str
    date: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "ticker": self.ticker,
            "date": self.date,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class TickerOutcome:
    """Counts for one ticker. `bars_skipped` are valid rows outside the run's date window."""

    ticker: str
    exchange: str
    source: str
    status: TickerStatus = TickerStatus.DONE
    bars_read: int = 0
    bars_written: int = 0
    bars_rejected: int = 0
    bars_flagged: int = 0
    bars_skipped: int = 0
    first_day_written: datetime.date | None = None
    last_day_written: datetime.date | None = None
    error: str | None = None

    def record_written(self, day: datetime.date) -> None:
        self.bars_written += 1
        if self.first_day_written is None or day < self.first_day_written:
            self.first_day_written = day
        if self.last_day_written is None or day > self.last_day_written:
            self.last_day_written = day

    def summary(self) -> str:
        if self.status is TickerStatus.NOT_FOUND:
            return f"{self.ticker}: not found in {self.source}"
        text = (
            f"{self.ticker}: {self.bars_written} bars written, "
            f"{self.bars_rejected} rejected, {self.bars_flagged} flagged"
        )
        if self.status is TickerStatus.FAILED:
            text += f", failed: {self.error}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "exchange": self.exchange,
            "source": self.source,
            "status": self.status.value,
            "bars_read": self.bars_read,
            "bars_written": self.bars_written,
            "bars_rejected": self.bars_rejected,
            "bars_flagged": self.bars_flagged,
            "bars_skipped": self.bars_skipped,
            "first_day_written": _iso(self.first_day_written),
            "last_day_written": _iso(self.last_day_written),
            "error": self.error,
        }


@dataclass
class SampleList:
    """Counts per reason plus at most `limit` samples, and at most 10 per reason."""

    limit: int
    counts: Counter[str] = field(default_factory=Counter)
    samples: list[BarSample] = field(default_factory=list)

    def add(self, sample: BarSample) -> None:
        self.counts[sample.reason] += 1
        if len(self.samples) < self.limit and self.counts[sample.reason] <= MAX_SAMPLES_PER_REASON:
            self.samples.append(sample)


@dataclass
class DailyResult:
    """Totals, per-ticker outcomes and samples of rejected and flagged bars."""

    trading_day: datetime.date | None
    target: str
    incremental: bool
    rejected: SampleList
    flagged: SampleList
    tickers: list[TickerOutcome] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(getattr(outcome, name) for outcome in self.tickers)

    def tickers_with(self, status: TickerStatus) -> list[str]:
        return [outcome.ticker for outcome in self.tickers if outcome.status is status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trading_day": _iso(self.trading_day),
            "target": self.target,
            "incremental": self.incremental,
            "tickers_done": self.tickers_with(TickerStatus.DONE),
            "tickers_failed": self.tickers_with(TickerStatus.FAILED),
            "tickers_not_found": self.tickers_with(TickerStatus.NOT_FOUND),
            "bars_written": self.total("bars_written"),
            "bars_rejected": self.total("bars_rejected"),
            "bars_flagged": self.total("bars_flagged"),
            "bars_skipped": self.total("bars_skipped"),
            "rejected_by_reason": dict(sorted(self.rejected.counts.items())),
            "flagged_by_reason": dict(sorted(self.flagged.counts.items())),
            "rejected_samples": [sample.to_dict() for sample in self.rejected.samples],
            "flagged_samples": [sample.to_dict() for sample in self.flagged.samples],
            "tickers": [outcome.to_dict() for outcome in self.tickers],
            "source_errors": [
                {"source": name, "error": message}
                for name, message in sorted(self.source_errors.items())
            ],
        }


def _iso(day: datetime.date | None) -> str | None:
    return day.isoformat() if day is not None else None
