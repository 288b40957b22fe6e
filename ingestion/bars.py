"""The bar record that every source yields and the validator checks."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    """One daily OHLCV row as read from a source.

    A value that is empty, NaN or unparseable is None; `problem` then names why, and the
    validator rejects the bar. `date_text` is the date as written, kept for reports.
    """

    date_text: str
    day: datetime.date | None
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: int | None
    adj_close: float | None = None
    problem: str | None = None
