"""Tickers from a constituents list such as the S&P 500 constituents.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from ingestion.errors import PermanentIngestionError
from ingestion.markets import Listing, normalize_ticker

SYMBOL_COLUMN = "Symbol"


def read_universe(path: Path) -> list[Listing]:
    """Read the `Symbol` column of a CSV file; share classes such as BRK.B stay one ticker."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None or SYMBOL_COLUMN not in reader.fieldnames:
                raise PermanentIngestionError(f"universe file {path} has no {SYMBOL_COLUMN} column")
            symbols = [row[SYMBOL_COLUMN] for row in reader]
    except OSError as exc:
        raise PermanentIngestionError(f"universe file {path} cannot be read: {exc}") from exc
    listings: list[Listing] = []
    for symbol in symbols:
        try:
            listing = normalize_ticker(symbol)
        except ValueError as exc:
            raise PermanentIngestionError(f"universe file {path}: {exc}") from exc
        if listing not in listings:
            listings.append(listing)
    return listings
