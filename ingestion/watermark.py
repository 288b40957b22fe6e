"""The last day written per ticker, kept between runs in a file or another storage.

The file names the target and measurement it belongs to. If either changed, the
stored days are ignored, so switching targets never skips bars. A stored day after
`latest_day` (today in the market furthest ahead) is dropped, because only a bar with
a future date can have set it, and it would make every later bar of the ticker skipped.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ingestion.errors import TransientIngestionError

logger = logging.getLogger(__name__)


class WatermarkStorage(Protocol):
    """Storage of the watermark document between runs."""

    description: str

    def read(self) -> str | None:
        """Return the stored JSON text, or None when nothing is stored.

        Raises OSError when the storage cannot be read.
        """
        ...

    def update(self, merge: Callable[[str | None], str]) -> None:
        """Replace the stored text with `merge(stored text)`, atomically.

        Two runs saving at once must not lose each other's tickers, so the
        read and the write form one step. Raises TransientIngestionError.
        """
        ...


@dataclass(frozen=True)
class FileStorage:
    """A JSON file, replaced through a temporary file and a rename so it is never half written."""

    path: Path

    @property
    def description(self) -> str:
        return f"file {self.path}"

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def update(self, merge: Callable[[str | None], str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with exclusive_lock(self.path):
                try:
                    text = merge(self.read())
                except OSError:
                    text = merge(None)
                handle, temp_name = tempfile.mkstemp(
                    prefix=f".{self.path.name}.", dir=self.path.parent
                )
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    stream.write(text)
                os.replace(temp_name, self.path)
        except OSError as exc:
            raise TransientIngestionError(f"saving watermark {self.path} failed: {exc}") from exc


@dataclass
class Watermark:
    """Last day written per canonical ticker, for one target and measurement."""

    storage: WatermarkStorage
    target: str
    measurement: str
    latest_day: datetime.date
    last_days: dict[str, datetime.date] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        storage: WatermarkStorage,
        target: str,
        measurement: str,
        latest_day: datetime.date,
    ) -> Watermark:
        watermark = cls(storage, target, measurement, latest_day)
        try:
            text = storage.read()
        except OSError as exc:
            # An unreadable watermark only costs a full re-ingest, which writes the same points.
            logger.warning(
                "watermark ignored", extra={"storage": storage.description, "error": str(exc)}
            )
            return watermark
        watermark.last_days.update(watermark._stored_days(text))
        return watermark

    def get(self, ticker: str) -> datetime.date | None:
        return self.last_days.get(ticker)

    def advance(self, ticker: str, day: datetime.date) -> None:
        """Move the ticker's day forward to `day`.

        Raises ValueError if `day` is after latest_day.
        """
        if day > self.latest_day:
            raise ValueError(f"watermark day {day} for {ticker} is after {self.latest_day}")
        current = self.last_days.get(ticker)
        if current is None or day > current:
            self.last_days[ticker] = day

    def save(self) -> None:
        """Store the days of this watermark, keeping any later day another run stored."""
        self.storage.update(self._merge)

    def _merge(self, stored_text: str | None) -> str:
        merged = dict(self.last_days)
        for ticker, day in self._stored_days(stored_text).items():
            if ticker not in merged or day > merged[ticker]:
                merged[ticker] = day
        document = {
            "target": self.target,
            "measurement": self.measurement,
            "last_days": {t: d.isoformat() for t, d in sorted(merged.items())},
        }
        return json.dumps(document, indent=1)

    def _stored_days(self, text: str | None) -> dict[str, datetime.date]:
        """Return the usable days of a stored watermark document.

        Anything unusable (not JSON, another shape, another target, a bad or
        future day) is dropped with a warning: a missing day only costs a
        full read of that ticker, which writes the same points.
        """
        if text is None:
            return {}
        where = {"storage": self.storage.description}
        try:
            stored = json.loads(text)
        except ValueError as exc:
            logger.warning("watermark ignored", extra={**where, "error": str(exc)})
            return {}
        if not isinstance(stored, dict) or not isinstance(stored.get("last_days"), dict):
            logger.warning("watermark ignored: unexpected document shape", extra=where)
            return {}
        if stored.get("target") != self.target or stored.get("measurement") != self.measurement:
            logger.info("watermark belongs to another target, ignored", extra=where)
            return {}
        days = {}
        for ticker, value in stored["last_days"].items():
            day = _parse_day(value)
            if day is None or day > self.latest_day:
                logger.warning(
                    "watermark day unusable, the ticker is read in full",
                    extra={**where, "ticker": ticker, "day": repr(value)},
                )
                continue
            days[ticker] = day
        return days


def _parse_day(value: object) -> datetime.date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` for the block, waiting for other holders.

    flock locks are advisory and per host: they order runs of this service
    on one machine, which is where a file target lives.
    """
    with open(path.with_name(path.name + ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
