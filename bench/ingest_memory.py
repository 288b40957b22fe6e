"""Compare peak traced memory of run_daily on a file of N rows and one of 10 N rows.

Streaming means the peak should not grow with the file. The script prints the ratio of
the two peaks, both measured in the same process. A ratio near 1 means constant memory,
and a ratio near 10 means the file is held in memory.

    PYTHONPATH=. python bench/ingest_memory.py [--rows N]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import tracemalloc
from pathlib import Path

from ingestion.config import IngestionConfig
from ingestion.daily import DailyParams, run_daily

HEADER = (
    "Price,Adj Close,Close,High,Low,Open,Volume\n"
    "Ticker,{ticker},{ticker},{ticker},{ticker},{ticker},{ticker}\n"
    "Date,,,,,,\n"
)


def write_yfinance_file(directory: Path, ticker: str, rows: int) -> None:
    # The rows end before today, because bars dated after today are rejected.
    day = datetime.date(2024, 12, 31) - datetime.timedelta(days=rows)
    with (directory / f"{ticker}.csv").open("w") as stream:
        stream.write(HEADER.format(ticker=ticker))
        for index in range(rows):
            price = 1000.0 + (index % 50)
            high, low, open_ = price + 5, price - 5, price - 1
            stream.write(f"{day},{price},{price},{high},{low},{open_},{1000 + index}\n")
            day += datetime.timedelta(days=1)


def peak_traced_bytes(rows: int, work_dir: Path) -> int:
    data_dir = work_dir / f"data_{rows}"
    data_dir.mkdir()
    write_yfinance_file(data_dir, "1301.T", rows)
    config = IngestionConfig(
        market_data_dir=data_dir,
        influx=None,
        points_file=work_dir / f"points_{rows}.lp",
        incremental=False,
    )
    tracemalloc.start()
    run_daily(DailyParams(None, None), config, lambda progress: None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the small file (N)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work_dir = Path(temp)
        # A warm-up run loads the trading calendar and imports, which both runs share.
        peak_traced_bytes(100, work_dir)
        small = peak_traced_bytes(args.rows, work_dir)
        large = peak_traced_bytes(args.rows * 10, work_dir)
    print(f"rows N={args.rows}: peak traced memory {small / 1e6:.2f} MB")
    print(f"rows 10N={args.rows * 10}: peak traced memory {large / 1e6:.2f} MB")
    print(f"ratio 10N/N: {large / small:.2f} (1 = constant memory, 10 = grows with the file)")


if __name__ == "__main__":
    main()
