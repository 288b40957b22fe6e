"""Write targets: an InfluxDB write API, or a line-protocol file for `influx write`.

Both take points one at a time, send them in batches, and must be finished with
commit() so that no batch is lost. abort() leaves the file target as it was.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol

import urllib3.exceptions
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from ingestion.config import InfluxTarget, IngestionConfig
from ingestion.errors import TransientIngestionError, WriteRejectedError
from ingestion.points import WRITE_PRECISION

logger = logging.getLogger(__name__)


class PointWriter(Protocol):
    """The interface run_daily writes points through."""

    description: str

    def write(self, point: Point, ticker: str) -> None: ...

    def flush(self, ticker: str) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def open_writer(config: IngestionConfig, latest_timestamp_s: int) -> PointWriter:
    """Open the configured target.

    The file target drops lines of the previous file stamped after latest_timestamp_s.
    """
    if config.influx is not None:
        return InfluxWriter(config.influx, config)
    return LineProtocolFileWriter(config.points_file, latest_timestamp_s)


class InfluxWriter:
    """Sends batches of `batch_size` points with the synchronous write API, with retries."""

    def __init__(self, target: InfluxTarget, config: IngestionConfig) -> None:
        self.target = target
        self.description = f"InfluxDB at {target.url} (bucket {target.bucket!r})"
        self._batch_size = config.batch_size
        self._attempts = max(1, config.write_attempts)
        self._backoff_s = config.write_backoff_s
        # retries=False turns off urllib3's own retries, so the loop in _send decides
        # how often and how long to wait.
        self._client = InfluxDBClient(
            url=target.url,
            token=target.token,
            org=target.org,
            timeout=int(config.write_timeout_s * 1000),
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._batch: list[Point] = []

    def write(self, point: Point, ticker: str) -> None:
        self._batch.append(point)
        if len(self._batch) >= self._batch_size:
            self.flush(ticker)

    def flush(self, ticker: str) -> None:
        if not self._batch:
            return
        self._send(self._batch, ticker)
        self._batch = []

    def commit(self) -> None:
        # run_daily flushes after every ticker; this only guards against a caller that did not.
        self.flush(ticker="(end of run)")
        self._close()

    def abort(self) -> None:
        self._batch = []
        self._close()

    def _close(self) -> None:
        self._write_api.close()
        self._client.close()

    def _send(self, batch: list[Point], ticker: str) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                self._write_api.write(
                    bucket=self.target.bucket,
                    org=self.target.org,
                    record=batch,
                    write_precision=WRITE_PRECISION,
                )
                return
            except ApiException as exc:
                if exc.status != 429 and (exc.status is None or exc.status < 500):
                    raise WriteRejectedError(
                        f"{self.description} rejected {len(batch)} points of {ticker} "
                        f"with HTTP {exc.status}: {exc.body or exc.reason}"
                    ) from exc
                error: Exception = exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                error = exc
            if attempt == self._attempts:
                raise TransientIngestionError(
                    f"write to {self.description} failed for {ticker} after {attempt} "
                    f"attempts: {error}"
                ) from error
            delay_s = self._backoff_s * 2 ** (attempt - 1)
            logger.warning(
                "write failed, retrying",
                extra={
                    "ticker": ticker,
                    "attempt": attempt,
                    "delay_s": delay_s,
                    "target": self.target.url,
                    "error": str(error),
                },
            )
            time.sleep(delay_s)


# The series key ends at the first space that is not escaped with a backslash.
_SERIES_KEY_END = re.compile(r"(?<!\\) ")


class LineProtocolFileWriter:
    """Writes line protocol (precision s) to a temporary file, then replaces points_file.

    The new file contains this run's points plus every line of the previous file that
    this run did not cover: for each series, old lines inside the run's first..last
    timestamp are dropped because the run wrote that range again. A re-run therefore
    yields the same file, an incremental run extends it, and a failed run leaves the
    previous file untouched. Old lines stamped after `latest_timestamp_s` are dropped
    too: they are bars with a future date, which validation now rejects.
    """

    def __init__(self, path: Path, latest_timestamp_s: int) -> None:
        self.path = path
        self._latest_timestamp_s = latest_timestamp_s
        self.description = f"line-protocol file {path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        self._temp_path = Path(temp_name)
        self._stream = os.fdopen(handle, "w", encoding="utf-8", newline="\n")
        self._ranges: dict[str, tuple[int, int]] = {}

    def write(self, point: Point, ticker: str) -> None:
        line = point.to_line_protocol(precision=WRITE_PRECISION)
        series_key, timestamp = _split_line(line)
        first, last = self._ranges.get(series_key, (timestamp, timestamp))
        self._ranges[series_key] = (min(first, timestamp), max(last, timestamp))
        self._stream.write(line + "\n")

    def flush(self, ticker: str) -> None:
        self._stream.flush()

    def commit(self) -> None:
        try:
            self._copy_uncovered_lines()
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            os.replace(self._temp_path, self.path)
        except OSError as exc:
            self.abort()
            raise TransientIngestionError(f"writing {self.description} failed: {exc}") from exc

    def abort(self) -> None:
        self._stream.close()
        self._temp_path.unlink(missing_ok=True)

    def _copy_uncovered_lines(self) -> None:
        if not self.path.exists():
            return
        future_lines = 0
        with self.path.open("r", encoding="utf-8") as previous:
            for line in previous:
                if not line.strip():
                    continue
                series_key, timestamp = _split_line(line.rstrip("\n"))
                if timestamp > self._latest_timestamp_s:
                    future_lines += 1
                    continue
                covered = self._ranges.get(series_key)
                if covered is None or not covered[0] <= timestamp <= covered[1]:
                    self._stream.write(line if line.endswith("\n") else line + "\n")
        if future_lines:
            logger.warning(
                "points with a future date dropped from the previous file",
                extra={"path": str(self.path), "lines": future_lines},
            )


def _split_line(line: str) -> tuple[str, int]:
    match = _SERIES_KEY_END.search(line)
    if match is None:
        raise ValueError(f"not a line-protocol line: {line[:80]!r}")
    return line[: match.start()], int(line.rsplit(" ", 1)[1])
