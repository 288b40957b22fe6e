"""Daily-bar CSV files in a directory, read one row at a time.

Three layouts are recognised from the header:
- yfinance export: three header rows `Price,Adj Close,Close,...`, `Ticker,7203.T,...`,
  `Date,,,...`; the ticker comes from the Ticker row and the column order from the first.
- plain: one header row naming Date, Open, High, Low, Close, Volume (Stooq downloads);
  the ticker comes from the file name (`aapl_us_d.csv` is AAPL on the US market).
- Japanese broker export: 日付,始値,高値,安値,終値,出来高 in UTF-8 (with or without BOM)
  or CP932, dates as YYYY/MM/DD, numbers with thousands separators, newest row first.

Rows are always yielded oldest first: a file whose first two distinct dates descend
is read backwards from its end, so no layout is held in memory as a whole.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ingestion.bars import Bar
from ingestion.errors import SourceFileError
from ingestion.markets import Listing, listing_from_file_stem, normalize_ticker
from ingestion.sources.parsing import ColumnMap, bar_from_row, parse_day, split_csv_line

logger = logging.getLogger(__name__)

_READ_BLOCK_BYTES = 64 * 1024
# Discovery reads at most this much of a header line, so a file without LF line breaks
# (binary data, classic-Mac CR endings) is not read into memory as a whole.
_MAX_HEADER_LINE_BYTES = 1024 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"


class CsvLayout(enum.StrEnum):
    YFINANCE = "yfinance"
    PLAIN = "plain"


@dataclass(frozen=True)
class CsvFile:
    """A probed source file: its listing, encoding, columns and where data rows start."""

    path: Path
    listing: Listing
    layout: CsvLayout
    encoding: str
    columns: ColumnMap
    data_offset: int


def discover(directory: Path) -> tuple[dict[str, CsvFile], dict[str, str]]:
    """Probe every *.csv in `directory`.

    Returns the files by canonical ticker and, separately, a message per file that
    cannot be used (keyed by file name), so one bad file never hides the others.
    """
    files: dict[str, CsvFile] = {}
    problems: dict[str, str] = {}
    for path in sorted(directory.glob("*.csv")):
        try:
            probed = probe(path)
        except SourceFileError as exc:
            problems[path.name] = str(exc)
            continue
        if probed.listing.ticker in files:
            other = files[probed.listing.ticker].path.name
            problems[path.name] = f"{path.name}: ticker {probed.listing.ticker} also in {other}"
            continue
        files[probed.listing.ticker] = probed
    return files, problems


def probe(path: Path) -> CsvFile:
    """Read the header of `path` and work out layout, encoding, columns and ticker.

    Raises SourceFileError when the file cannot be used.
    """
    try:
        with path.open("rb") as stream:
            first = _read_header_line(stream, path)
            encoding = _detect_encoding(first, path)
            header = _split(first, encoding, path)
            if header[:1] == ["Price"]:
                return _probe_yfinance(path, stream, encoding, header)
            columns = ColumnMap.from_header(header, path.name)
            data_offset = stream.tell()
    except OSError as exc:
        raise SourceFileError(f"{path.name}: cannot be read: {exc}") from exc
    listing = _listing_from_name(path)
    return CsvFile(path, listing, CsvLayout.PLAIN, encoding, columns, data_offset)


def read_bars(source: CsvFile) -> Iterator[Bar]:
    """Yield the bars of a probed file, oldest first."""
    try:
        with source.path.open("rb") as stream:
            if _is_newest_first(stream, source):
                lines = _lines_backwards(stream, source.data_offset)
            else:
                stream.seek(source.data_offset)
                lines = iter(stream)
            for raw_line in lines:
                if not raw_line.strip():
                    continue
                yield bar_from_row(_split(raw_line, source.encoding, source.path), source.columns)
    except OSError as exc:
        raise SourceFileError(f"{source.path.name}: read failed: {exc}") from exc


def _read_header_line(stream: BinaryIO, path: Path) -> bytes:
    line = stream.readline(_MAX_HEADER_LINE_BYTES + 1)
    # Lines are split on LF only, so a CR inside the line means CR-only line endings,
    # which would turn the whole file into one record.
    if b"\r" in line.rstrip(b"\r\n"):
        raise SourceFileError(
            f"{path.name}: the file has CR (classic Mac) line endings; "
            "save it with LF or CRLF line endings"
        )
    if len(line) > _MAX_HEADER_LINE_BYTES:
        raise SourceFileError(
            f"{path.name}: header line is longer than {_MAX_HEADER_LINE_BYTES} bytes; "
            "expected a CSV file with one row per line"
        )
    return line


def _probe_yfinance(path: Path, stream: BinaryIO, encoding: str, header: list[str]) -> CsvFile:
    ticker_row = _split(stream.readline(), encoding, path)
    date_row = _split(stream.readline(), encoding, path)
    if ticker_row[:1] != ["Ticker"] or date_row[:1] != ["Date"]:
        raise SourceFileError(
            f"{path.name}: yfinance header must be followed by a Ticker row and a Date row"
        )
    tickers = {cell.strip() for cell in ticker_row[1:] if cell.strip()}
    if len(tickers) != 1:
        raise SourceFileError(f"{path.name}: expected one ticker in the Ticker row, got {tickers}")
    try:
        listing = normalize_ticker(tickers.pop())
    except ValueError as exc:
        raise SourceFileError(f"{path.name}: {exc}") from exc
    # The first header row names the price columns; its first cell stands for the Date.
    columns = ColumnMap.from_header(["Date", *header[1:]], path.name)
    return CsvFile(path, listing, CsvLayout.YFINANCE, encoding, columns, stream.tell())


def _listing_from_name(path: Path) -> Listing:
    try:
        return listing_from_file_stem(path.name.removesuffix(".csv"))
    except ValueError as exc:
        raise SourceFileError(f"{path.name}: no ticker in the file name: {exc}") from exc


def _detect_encoding(first_line: bytes, path: Path) -> str:
    if first_line.startswith(_UTF8_BOM):
        return "utf-8-sig"
    # CP932 decodes almost any byte string, UTF-16 and binary data included, so text
    # with NUL bytes is rejected first.
    if b"\x00" in first_line:
        raise SourceFileError(
            f"{path.name}: header contains NUL bytes (UTF-16 or binary data); "
            "save the file as UTF-8 or CP932 (Shift-JIS)"
        )
    for encoding in ("utf-8", "cp932"):
        try:
            first_line.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise SourceFileError(f"{path.name}: header is not UTF-8 or CP932 (Shift-JIS) text")


def _split(raw_line: bytes, encoding: str, path: Path) -> list[str]:
    try:
        text = raw_line.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SourceFileError(f"{path.name}: invalid {encoding} byte sequence: {exc}") from exc
    # NOTE: each physical line is one record, so a quoted cell containing a line
    # break is not supported; none of the supported layouts produces one.
    return split_csv_line(text.lstrip("\ufeff").rstrip("\r\n"), path.name)


def _is_newest_first(stream: BinaryIO, source: CsvFile) -> bool:
    """Return whether the first two distinct valid dates in the file are descending.

    Distinct, because a file that repeats its newest row would otherwise look
    oldest first, and all its older rows would be rejected as out of order.
    """
    stream.seek(source.data_offset)
    first_day = None
    for raw_line in stream:
        if not raw_line.strip():
            continue
        row = _split(raw_line, source.encoding, source.path)
        # A row too short to have a date is rejected later as short_row.
        if len(row) <= source.columns.date:
            continue
        day = parse_day(row[source.columns.date])
        if day is None or day == first_day:
            continue
        if first_day is None:
            first_day = day
            continue
        return first_day > day
    return False


def _lines_backwards(stream: BinaryIO, start: int) -> Iterator[bytes]:
    """Yield the lines between byte `start` and the end of `stream`, last line first.

    Splitting raw bytes on b"\\n" is safe for UTF-8 and CP932 because neither uses the
    byte 0x0A inside a multi-byte character.
    """
    position = stream.seek(0, 2)
    tail = b""
    while position > start:
        size = min(_READ_BLOCK_BYTES, position - start)
        position -= size
        stream.seek(position)
        pieces = (stream.read(size) + tail).split(b"\n")
        tail = pieces[0]
        yield from reversed(pieces[1:])
    yield tail
