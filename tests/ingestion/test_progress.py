"""Progress callbacks: once per ticker, non-decreasing, and able to abort the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.config import IngestionConfig
from ingestion.daily import DailyParams, Progress, run_daily
from ingestion.errors import PermanentIngestionError


def test_progress_once_per_ticker(file_config: IngestionConfig) -> None:
    calls: list[Progress] = []
    run_daily(DailyParams(None, None), file_config, calls.append)

    assert [call.ticker for call in calls] == ["7203.T", "7974.T", "8306.T", "9984.T"]
    percents = [call.percent for call in calls]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert calls[0].message == "7203.T: 2927 bars written, 24 rejected, 1 flagged"


def test_progress_exception_propagates(file_config: IngestionConfig) -> None:
    class LeaseLost(Exception):
        pass

    calls: list[Progress] = []

    def lose_lease(progress: Progress) -> None:
        calls.append(progress)
        raise LeaseLost()

    with pytest.raises(LeaseLost):
        run_daily(DailyParams(None, None), file_config, lose_lease)
    assert len(calls) == 1


def test_unknown_ticker_is_reported(file_config: IngestionConfig) -> None:
    calls: list[Progress] = []
    result = run_daily(DailyParams(None, ("7203", "6501.T")), file_config, calls.append)

    assert result.to_dict()["tickers_done"] == ["7203.T"]
    assert result.to_dict()["tickers_not_found"] == ["6501.T"]
    assert calls[-1].message == "6501.T: not found in directory " + str(file_config.market_data_dir)


@pytest.mark.parametrize("tickers", [(), ("",), ("72 03",), ("ABC,DEF",)])
def test_invalid_tickers_are_permanent(file_config: IngestionConfig, tickers: tuple) -> None:
    with pytest.raises(PermanentIngestionError):
        run_daily(DailyParams(None, tickers), file_config, lambda progress: None)


def test_missing_data_dir_is_permanent(file_config: IngestionConfig, tmp_path: Path) -> None:
    config = IngestionConfig(
        market_data_dir=tmp_path / "absent", influx=None, points_file=file_config.points_file
    )
    with pytest.raises(PermanentIngestionError, match="absent"):
        run_daily(DailyParams(None, None), config, lambda progress: None)
