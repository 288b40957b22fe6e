"""Parsing of CSV cells and headers shared by the file and HTTP sources."""

from __future__ import annotations

import csv
import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingestion.bars import Bar
from ingestion.errors import SourceFileError

# Header names per field, compared after strip() and lower(). The Japanese names are
# the columns of Japanese broker exports (日付 date, 始値 open, 高値 high, 安値 low,
# 終値 close, 出来高 volume, 調整後終値 adjusted close).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "日付"),
    "open": ("open", "始値"),
    "high": ("high", "高値"),
    "low": ("low", "安値"),
    "close": ("close", "終値"),
    "adj_close": ("adj close", "adj_close", "adjclose", "調整後終値"),
    "volume": ("volume", "出来高"),
}
REQUIRED_FIELDS = ("date", "open", "high", "low", "close", "volume")
_MISSING_MARKERS = frozenset({"", "-", "nan", "null", "none", "n/a", "#n/a"})
# YYYY-MM-DD or YYYY/MM/DD with ASCII digits and one kind of separator, optionally
# followed by a time part. date.fromisoformat alone would also accept 20240104 and
# ISO week dates such as 2024-W02-1 (Python 3.11 and later).
_DATE = re.compile(
    r"(?P<year>[0-9]{4})(?P<separator>[-/])(?P<month>[0-9]{2})(?P=separator)(?P<day>[0-9]{2})"
    r"(?:[T ].*)?"
)


@dataclass(frozen=True)
class ColumnMap:
    """Column index of each field in a data row; adj_close is optional."""

    date: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    adj_close: int | None

    @classmethod
    def from_header(cls, names: Sequence[str], source: str) -> ColumnMap:
        positions: dict[str, int] = {}
        for index, name in enumerate(names):
            key = name.strip().lstrip("\ufeff").lower()
            for field_name, aliases in HEADER_ALIASES.items():
                if key in aliases and field_name not in positions:
                    positions[field_name] = index
        missing = [name for name in REQUIRED_FIELDS if name not in positions]
        if missing:
            raise SourceFileError(
                f"{source}: header {list(names)!r} has no column for {', '.join(missing)}; "
                "expected Date,Open,High,Low,Close,Volume "
                "or 日付,始値,高値,安値,終値,出来高"
            )
        required = {name: positions[name] for name in REQUIRED_FIELDS}
        return cls(adj_close=positions.get("adj_close"), **required)

    def last_index(self) -> int:
        """Return the highest column index a data row must have."""
        indexes = [self.date, self.open, self.high, self.low, self.close, self.volume]
        if self.adj_close is not None:
            indexes.append(self.adj_close)
        return max(indexes)


def split_csv_line(text: str, source: str) -> list[str]:
    """Split one line of CSV text into cells.

    Raises SourceFileError when the csv module rejects the line, for example a cell
    above csv.field_size_limit() (128 KiB by default) or a bare carriage return.
    """
    try:
        return next(csv.reader([text]), [])
    except csv.Error as exc:
        raise SourceFileError(f"{source}: invalid CSV: {exc}") from exc


def parse_day(text: str) -> datetime.date | None:
    """Parse YYYY-MM-DD or YYYY/MM/DD; a time part after a space or T is ignored.

    Returns None for any other form and for dates that do not exist.
    """
    match = _DATE.fullmatch(text.strip())
    if match is None:
        return None
    try:
        return datetime.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        return None


def parse_price(text: str) -> float | None:
    cleaned = text.strip().replace(",", "")
    if cleaned.lower() in _MISSING_MARKERS:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_volume(text: str) -> int | None:
    """Parse a share count; `1,234`, `1234` and `1234.0` give 1234, a fraction gives None."""
    cleaned = text.strip().replace(",", "")
    if cleaned.lower() in _MISSING_MARKERS:
        return None
    try:
        return int(cleaned)
    except ValueError:
        pass
    value = parse_price(cleaned)
    if value is None or not value.is_integer():
        return None
    return int(value)


def bar_from_row(row: Sequence[str], columns: ColumnMap) -> Bar:
    """Build a Bar from one data row; bad cells become None and set `problem`.

    When the header has an adjusted close, it is required like the other prices.
    """
    if len(row) <= columns.last_index():
        return Bar(",".join(row)[:32], None, None, None, None, None, None, problem="short_row")
    date_text = row[columns.date].strip()
    day = parse_day(date_text)
    values = [row[i] for i in (columns.open, columns.high, columns.low, columns.close)]
    prices = [parse_price(text) for text in values]
    volume = parse_volume(row[columns.volume])
    adj_close = None
    if columns.adj_close is not None:
        adj_close = parse_price(row[columns.adj_close])
        prices.append(adj_close)
    problem = None
    if day is None:
        problem = "invalid_date"
    elif any(price is None for price in prices) or volume is None:
        problem = "missing_value"
    return Bar(date_text, day, *prices[:4], volume=volume, adj_close=adj_close, problem=problem)
