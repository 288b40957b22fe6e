"""Conversion of a validated bar into an InfluxDB point.

Schema: measurement (default `daily_bars`), tags `ticker` and `exchange`, float fields
open/high/low/close (and adj_close when the source has it), integer field volume,
timestamp in seconds at the market's fixed session close on the trading day.
"""

from __future__ import annotations

from influxdb_client import Point, WritePrecision

from ingestion.bars import Bar
from ingestion.markets import Listing

WRITE_PRECISION = WritePrecision.S


def bar_to_point(measurement: str, listing: Listing, bar: Bar) -> Point:
    """Build the point for a bar that passed validation (all OHLCV values present)."""
    assert bar.day is not None and bar.volume is not None
    market = listing.market
    point = (
        Point(measurement)
        .tag("ticker", listing.ticker)
        .tag("exchange", market.code)
        .field("open", float(bar.open))  # type: ignore[arg-type]
        .field("high", float(bar.high))  # type: ignore[arg-type]
        .field("low", float(bar.low))  # type: ignore[arg-type]
        .field("close", float(bar.close))  # type: ignore[arg-type]
    )
    if bar.adj_close is not None:
        point = point.field("adj_close", float(bar.adj_close))
    # An int keeps the `i` suffix in line protocol; a float volume would conflict with
    # the integer field type that InfluxDB fixed on the first write.
    point = point.field("volume", int(bar.volume))
    return point.time(market.bar_timestamp(bar.day), WRITE_PRECISION)
