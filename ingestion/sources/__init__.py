"""Sources of daily bars: a directory of CSV files, or an HTTP quotes endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ingestion.bars import Bar
from ingestion.errors import SourceFileError, TickerNotFoundError
from ingestion.markets import Listing
from ingestion.sources.csv_files import CsvFile, discover, read_bars


class BarSource(Protocol):
    """Yields bars per listing, oldest first."""

    description: str
    # Problems found while listing the source, keyed by file name; empty if none.
    problems: dict[str, str]

    def available(self) -> list[Listing] | None:
        """Return every listing the source has, or None if it cannot enumerate them."""
        ...

    def bars(self, listing: Listing) -> Iterator[Bar]:
        """Yield the listing's bars.

        Raises TickerNotFoundError if the source has none for it, and SourceFileError
        if its file or response cannot be read.
        """
        ...

    def source_name(self, listing: Listing) -> str: ...


class DirectorySource:
    """CSV files in one directory, one ticker per file."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise SourceFileError(f"market data directory {directory} not found")
        self.description = f"directory {directory}"
        self._files, self.problems = discover(directory)

    def available(self) -> list[Listing] | None:
        return sorted(csv_file.listing for csv_file in self._files.values())

    def bars(self, listing: Listing) -> Iterator[Bar]:
        return read_bars(self._file(listing))

    def source_name(self, listing: Listing) -> str:
        csv_file = self._files.get(listing.ticker)
        return csv_file.path.name if csv_file is not None else self.description

    def _file(self, listing: Listing) -> CsvFile:
        try:
            return self._files[listing.ticker]
        except KeyError:
            raise TickerNotFoundError(listing.ticker) from None
