"""Run the local Cloud Tasks server until interrupted: `python -m localtasks --help`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from localtasks.models import QueueSettings
from localtasks.server import LocalCloudTasks
from localtasks.signing import require_loopback

# Attributes every LogRecord has; anything else on a record came from `extra`.
STANDARD_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
}


class ExtraFieldsFormatter(logging.Formatter):
    """Formats a record as its message followed by its `extra` fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            key: value
            for key, value in vars(record).items()
            if key not in STANDARD_RECORD_ATTRIBUTES
        }
        if not extras:
            return line
        return line + " " + " ".join(f"{key}={value}" for key, value in extras.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localtasks",
        description="Local Cloud Tasks server: CreateTask over gRPC, HTTP push with "
        "OIDC tokens, and the signing key as JWKS. Listens on loopback only.",
    )

    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument(
        "--grpc-port", type=int, default=8123, help="gRPC port; 0 picks a free port"
    )
    parser.add_argument(
        "--jwks-port",
        type=int,
        default=8124,
        help="JWKS HTTP port; 0 picks a free port",
    )

    parser.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="attempts per task, the first included",
    )
    parser.add_argument(
        "--min-backoff-s",
        type=float,
        default=1.0,
        help="delay before the first retry, seconds",
    )
    parser.add_argument(
        "--max-backoff-s",
        type=float,
        default=30.0,
        help="max delay between retries, seconds",
    )
    parser.add_argument(
        "--max-doublings", type=int, default=16, help="times the retry delay doubles"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level name")

    args = parser.parse_args(argv)
    try:
        require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def run(args: argparse.Namespace) -> None:
    settings = QueueSettings(
        max_attempts=args.max_attempts,
        min_backoff_s=args.min_backoff_s,
        max_backoff_s=args.max_backoff_s,
        max_doublings=args.max_doublings,
    )
    server = LocalCloudTasks(settings)
    await server.start(args.host, grpc_port=args.grpc_port, jwks_port=args.jwks_port)

    print(f"gRPC address: {server.grpc_address}", flush=True)
    print(f"JWKS URL:     {server.jwks_url}", flush=True)
    print(f"issuer:       {server.issuer}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(ExtraFieldsFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
