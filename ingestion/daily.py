"""The daily ingestion run: read bars per ticker, validate, write points, report."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from ingestion.calendars import TradingCalendars
from ingestion.config import IngestionConfig
from ingestion.errors import (
    PermanentIngestionError,
    SourceFileError,
    TickerNotFoundError,
)
from ingestion.markets import (
    Listing,
    latest_bar_timestamp,
    latest_market_day,
    normalize_ticker,
)
from ingestion.points import bar_to_point
from ingestion.result import (
    BarSample,
    DailyResult,
    SampleList,
    TickerOutcome,
    TickerStatus,
)
from ingestion.sources import BarSource, DirectorySource
from ingestion.universe import read_universe
from ingestion.validation import BarValidator
from ingestion.watermark import FileStorage, Watermark, exclusive_lock
from ingestion.writers import PointWriter, open_writer

logger = logging.getLogger(__name__)

__all__ = ["DailyParams", "DailyResult", "Progress", "ProgressCallback", "run_daily"]


@dataclass(frozen=True)
class DailyParams:
    """The tickers and the last day a run ingests.

    trading_day: ingest bars up to and including this day; None = everything available.
    tickers: tickers in any accepted spelling; None = the universe file if configured,
    else every ticker the source has.
    """

    trading_day: datetime.date | None
    tickers: tuple[str, ...] | None


@dataclass(frozen=True)
class Progress:
    """Progress after one ticker: percent is 0-100 and never decreases within a run."""

    percent: int
    message: str
    ticker: str | None


ProgressCallback = Callable[[Progress], None]


def run_daily(
    params: DailyParams, config: IngestionConfig, on_progress: ProgressCallback
) -> DailyResult:
    """Ingest daily bars for the requested tickers into the configured target.

    Blocking. Calls on_progress once per ticker; an exception raised by on_progress
    aborts the run and propagates (the file target then keeps its previous content).
    Raises PermanentIngestionError for invalid params and TransientIngestionError when
    the write target or the market source is unavailable.
    """
    requested = _requested_listings(params)
    source = _open_source(config)
    listings = _select_listings(requested, config, source)
    # Runs for one file target take turns: each rewrites the whole file.
    with _target_lock(config):
        result = _ingest_listings(params, config, source, listings, on_progress)
    if not listings:
        on_progress(Progress(100, "no tickers to ingest", None))
    logger.info(
        "daily run finished",
        extra={
            "bars_written": result.total("bars_written"),
            "bars_rejected": result.total("bars_rejected"),
        },
    )
    return result


def _ingest_listings(
    params: DailyParams,
    config: IngestionConfig,
    source: BarSource,
    listings: list[Listing],
    on_progress: ProgressCallback,
) -> DailyResult:
    now = datetime.datetime.now(datetime.UTC)
    latest_day = latest_market_day(now)
    writer = open_writer(config, int(latest_bar_timestamp(now).timestamp()))
    watermark = _load_watermark(config, writer, latest_day)
    result = DailyResult(
        trading_day=params.trading_day,
        target=writer.description,
        incremental=config.incremental,
        rejected=SampleList(config.max_samples),
        flagged=SampleList(config.max_samples),
        source_errors=dict(source.problems),
    )
    calendars = TradingCalendars(last_day=_calendar_last_day(params, latest_day))
    logger.info("daily run started", extra={"tickers": len(listings), "target": writer.description})
    try:
        for index, listing in enumerate(listings, start=1):
            market_today = listing.market.today(now)
            validator = BarValidator(listing.market, calendars, market_today)
            outcome = _ingest_ticker(
                listing, params, config, source, writer, watermark, validator, result
            )
            result.tickers.append(outcome)
            if outcome.last_day_written is not None:
                watermark.advance(listing.ticker, outcome.last_day_written)
            on_progress(Progress(index * 100 // len(listings), outcome.summary(), listing.ticker))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if config.incremental:
        watermark.save()
    return result


def _target_lock(config: IngestionConfig) -> AbstractContextManager[None]:
    if config.influx is not None:
        return nullcontext()
    config.points_file.parent.mkdir(parents=True, exist_ok=True)
    return exclusive_lock(config.points_file)


def _requested_listings(params: DailyParams) -> list[Listing] | None:
    if params.tickers is None:
        return None
    if isinstance(params.tickers, str) or not params.tickers:
        raise PermanentIngestionError("tickers must be a non-empty list, or null for all")
    listings: list[Listing] = []
    for raw in params.tickers:
        try:
            listing = normalize_ticker(raw)
        except (ValueError, AttributeError) as exc:
            raise PermanentIngestionError(str(exc)) from exc
        if listing not in listings:
            listings.append(listing)
    return listings


def _open_source(config: IngestionConfig) -> BarSource:
    if config.http_source is not None:
        from ingestion.sources.http import HttpSource

        return HttpSource(config.http_source)
    try:
        return DirectorySource(config.market_data_dir)
    except SourceFileError as exc:
        raise PermanentIngestionError(f"{exc}; set MARKET_DATA_DIR to a directory") from exc


def _select_listings(
    requested: list[Listing] | None, config: IngestionConfig, source: BarSource
) -> list[Listing]:
    if requested is not None:
        return requested
    if config.universe_file is not None:
        return read_universe(config.universe_file)
    available = source.available()
    if available is None:
        raise PermanentIngestionError(
            f"{source.description} cannot list its tickers: request tickers or set a universe file"
        )
    return available


def _load_watermark(
    config: IngestionConfig, writer: PointWriter, latest_day: datetime.date
) -> Watermark:
    storage = config.watermark_storage or FileStorage(config.resolved_watermark_file())
    if not config.incremental:
        return Watermark(storage, writer.description, config.measurement, latest_day)
    return Watermark.load(storage, writer.description, config.measurement, latest_day)


def _calendar_last_day(params: DailyParams, latest_day: datetime.date) -> datetime.date:
    # Bars after latest_day are rejected before the trading-day check.
    if params.trading_day is None:
        return latest_day
    return min(params.trading_day, latest_day)


def _ingest_ticker(
    listing: Listing,
    params: DailyParams,
    config: IngestionConfig,
    source: BarSource,
    writer: PointWriter,
    watermark: Watermark,
    validator: BarValidator,
    result: DailyResult,
) -> TickerOutcome:
    outcome = TickerOutcome(listing.ticker, listing.market_code, source.source_name(listing))
    after_day = watermark.get(listing.ticker) if config.incremental else None
    try:
        for bar in source.bars(listing):
            outcome.bars_read += 1
            # Every bar is validated, also those outside the window, so that the
            # checks that compare with the previous bar give the same verdicts in an
            # incremental run as in a full one.
            verdict = validator.check(bar)
            if bar.day is not None and _outside_window(bar.day, params.trading_day, after_day):
                outcome.bars_skipped += 1
                continue
            if verdict.rejected is not None:
                outcome.bars_rejected += 1
                result.rejected.add(
                    BarSample(listing.ticker, bar.date_text, verdict.rejected, verdict.detail)
                )
                continue
            assert bar.day is not None
            writer.write(bar_to_point(config.measurement, listing, bar), listing.ticker)
            outcome.record_written(bar.day)
            if verdict.flags:
                outcome.bars_flagged += 1
                for flag in verdict.flags:
                    sample = BarSample(listing.ticker, bar.date_text, flag, verdict.detail)
                    result.flagged.add(sample)
    except TickerNotFoundError:
        outcome.status = TickerStatus.NOT_FOUND
    except SourceFileError as exc:
        outcome.status = TickerStatus.FAILED
        outcome.error = str(exc)
        logger.warning("source failed", extra={"ticker": listing.ticker, "error": str(exc)})
    # Flushing per ticker means a watermark never covers points still in a buffer.
    writer.flush(listing.ticker)
    logger.info("ticker ingested", extra=outcome.to_dict())
    return outcome


def _outside_window(
    day: datetime.date, last_day: datetime.date | None, after_day: datetime.date | None
) -> bool:
    if last_day is not None and day > last_day:
        return True
    return after_day is not None and day <= after_day
