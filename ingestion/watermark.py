"""The last day written per ticker, kept in a small JSON file between runs.

The file names the target and measurement it belongs to. If either changed, the
stored days are ignored, so switching targets never skips bars.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ingestion.errors import TransientIngestionError

logger = logging.getLogger(__name__)


@dataclass
class Watermark:
    """Last day written per canonical ticker, for one target and measurement."""

    path: Path
    target: str
    measurement: str
    last_days: dict[str, datetime.date] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, target: str, measurement: str) -> Watermark:
        watermark = cls(path, target, measurement)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return watermark
        except (OSError, ValueError) as exc:
            # An unreadable watermark only costs a full re-ingest, which writes the same points.
            logger.warning("watermark ignored", extra={"path": str(path), "error": str(exc)})
            return watermark
        if stored.get("target") != target or stored.get("measurement") != measurement:
            logger.info("watermark belongs to another target, ignored", extra={"path": str(path)})
            return watermark
        for ticker, day in stored.get("last_days", {}).items():
            watermark.last_days[ticker] = datetime.date.fromisoformat(day)
        return watermark

    def get(self, ticker: str) -> datetime.date | None:
        return self.last_days.get(ticker)

    def advance(self, ticker: str, day: datetime.date) -> None:
        current = self.last_days.get(ticker)
        if current is None or day > current:
            self.last_days[ticker] = day

    def save(self) -> None:
        """Write the file through a temporary file and a rename, so it is never half written."""
        document = {
            "target": self.target,
            "measurement": self.measurement,
            "last_days": {t: d.isoformat() for t, d in sorted(self.last_days.items())},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream, indent=1)
            os.replace(temp_name, self.path)
        except OSError as exc:
            raise TransientIngestionError(f"saving watermark {self.path} failed: {exc}") from exc
