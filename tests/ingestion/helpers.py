"""Independent readers of the test inputs, so tests do not check the parser with itself."""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class CsvRow:
    day: datetime.date
    values: dict[str, float]
    volume: int

    @property
    def is_zero_volume_flat(self) -> bool:
        prices = {self.values[name] for name in ("open", "high", "low", "close")}
        return self.volume == 0 and len(prices) == 1

    @property
    def is_inside_range(self) -> bool:
        low, high = self.values["low"], self.values["high"]
        return low <= self.values["open"] <= high and low <= self.values["close"] <= high


def read_yfinance_rows(path: Path) -> tuple[str, list[CsvRow]]:
    """Return the ticker and the rows of a yfinance three-header-row file."""
    with path.open(newline="") as stream:
        reader = csv.reader(stream)
        names = next(reader)
        ticker = next(reader)[1]
        next(reader)
        fields = {name.lower().replace(" ", "_"): index for index, name in enumerate(names)}
        rows = []
        for cells in reader:
            values = {
                name: float(cells[fields[name]])
                for name in ("open", "high", "low", "close", "adj_close")
            }
            rows.append(
                CsvRow(datetime.date.fromisoformat(cells[0]), values, int(cells[fields["volume"]]))
            )
    return ticker, rows


def day_of(timestamp_ms: int, zone: ZoneInfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp_ms / 1000, tz=zone).date()


def utc_day_of(timestamp_ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp_ms / 1000, tz=datetime.UTC).date()
