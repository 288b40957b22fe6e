"""kaboom-ingest: the operators' command line for the ingest HTTP API.

It talks to the service over HTTP only, never to Redis, so it works from
any machine that can reach the service. The base URL and the token come
from --url and --token, or from KABOOM_URL and INGEST_API_TOKEN.

Exit codes: 0 success (for run, rerun --wait and follow JOB_ID: the job
completed), 1 the job failed, 2 invalid usage or missing configuration,
3 the API returned an error or could not be reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

import httpx

from app.sse_client import SseMessage, StreamFailed, follow

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_API_ERROR = 3
EXIT_INTERRUPTED = 130

API = "/api/v1/ingest"
TOKEN_HEADER = "X-Ingest-Token"
PROGRESS_BAR_WIDTH = 30


class ApiCallFailed(Exception):
    """The API returned an error status; the message contains its error text."""


Command = Callable[[httpx.Client, argparse.Namespace, TextIO], int]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("KABOOM_URL")
    token = args.token or os.environ.get("INGEST_API_TOKEN")
    if not url:
        parser.print_usage(sys.stderr)
        print("error: no service URL: pass --url or set KABOOM_URL", file=sys.stderr)
        return EXIT_USAGE
    if not token:
        parser.print_usage(sys.stderr)
        print("error: no token: pass --token or set INGEST_API_TOKEN", file=sys.stderr)
        return EXIT_USAGE

    command: Command = args.command
    with httpx.Client(
        base_url=url.rstrip("/"), headers={TOKEN_HEADER: token}, timeout=args.timeout_s
    ) as client:
        try:
            return command(client, args, sys.stdout)
        except (ApiCallFailed, StreamFailed) as exc:
            print(f"error: {exc}", file=sys.stderr)
        except httpx.HTTPError as exc:
            print(f"error: request to {url} failed: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    return EXIT_API_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaboom-ingest", description="Run and inspect kaboom-ingest jobs over its HTTP API."
    )
    parser.add_argument("--url", help="service base URL (default: $KABOOM_URL)")
    parser.add_argument("--token", help="ingest API token (default: $INGEST_API_TOKEN)")
    parser.add_argument(
        "--timeout-s", type=float, default=30.0, help="timeout of each request in seconds"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="start a daily ingestion and wait until it ends")
    run.add_argument("--date", help="trading day to ingest up to, as YYYY-MM-DD")
    run.add_argument("--tickers", nargs="+", metavar="TICKER", help="tickers, such as 7203.T")
    run.add_argument("--no-wait", action="store_true", help="print the job and return at once")
    run.set_defaults(command=run_command)

    show = commands.add_parser("show", help="print a job's JSON")
    show.add_argument("job_id")
    show.add_argument("--at", metavar="EVENT_ID", help="the JSON as it was after event 0-N")
    show.set_defaults(command=show_command)

    history = commands.add_parser("history", help="print a job's events as a timeline")
    history.add_argument("job_id")
    history.add_argument("--json", action="store_true", help="print one JSON object per event")
    history.set_defaults(command=history_command)

    follow_parser = commands.add_parser(
        "follow", help="print events live: one job's until it ends, or every job's"
    )
    follow_parser.add_argument("job_id", nargs="?", help="job to follow (default: all jobs)")
    follow_parser.add_argument(
        "--count", type=int, metavar="N", help="stop after N events (default: no limit)"
    )
    follow_parser.set_defaults(command=follow_command)

    rerun = commands.add_parser("rerun", help="re-run a completed or failed job as a new job")
    rerun.add_argument("job_id")
    rerun.add_argument("--wait", action="store_true", help="wait until the new job ends")
    rerun.set_defaults(command=rerun_command)

    list_parser = commands.add_parser("list", help="list jobs, newest first")
    list_parser.add_argument("--status", choices=["queued", "running", "completed", "failed"])
    list_parser.add_argument("--since", help="created at or after: ISO 8601 time or YYYY-MM-DD")
    list_parser.add_argument("--limit", type=int, default=50, help="jobs per page (1 to 1000)")
    list_parser.add_argument("--cursor", help="next_cursor printed by the previous page")
    list_parser.set_defaults(command=list_command)
    return parser


def run_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {}
    if args.date:
        body["date"] = args.date
    if args.tickers:
        body["tickers"] = args.tickers
    job = _call(client, "POST", f"{API}/run-daily", json=body)
    print(f"job {job['job_id']} {job['status']}", file=out)
    if args.no_wait:
        return EXIT_OK
    return _wait_for_job(client, job["job_id"], out)


def show_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    params = {"at": args.at} if args.at else None
    job = _call(client, "GET", f"{API}/jobs/{args.job_id}", params=params)
    print(json.dumps(job, indent=2, ensure_ascii=False), file=out)
    return EXIT_OK


def history_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    params: dict[str, str] = {"limit": "1000"}
    while True:
        page = _call(client, "GET", f"{API}/jobs/{args.job_id}/events", params=params)
        for event in page["events"]:
            line = json.dumps(event, ensure_ascii=False) if args.json else format_event(event)
            print(line, file=out)
        if page["next_cursor"] is None:
            return EXIT_OK
        params["after"] = page["next_cursor"]


def follow_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.job_id is None:
        path, reconnect_at_end = f"{API}/stream", True
    else:
        path, reconnect_at_end = f"{API}/jobs/{args.job_id}/stream", False
    final_type = None
    # closing() ends the HTTP stream at once when --count stops the loop early.
    with contextlib.closing(follow(client, path, reconnect_at_end=reconnect_at_end)) as messages:
        for count, message in enumerate(messages, 1):
            event = message.data
            prefix = f"{event['job_id']}  " if args.job_id is None else ""
            print(prefix + format_event(event), file=out, flush=True)
            if event["type"] in ("completed", "failed"):
                final_type = event["type"]
            if args.count is not None and count >= args.count:
                break
    if args.job_id is not None and final_type == "failed":
        return EXIT_JOB_FAILED
    return EXIT_OK


def rerun_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    doc = _call(client, "POST", f"{API}/jobs/{args.job_id}/rerun")
    new_id = doc["job"]["job_id"]
    print(f"job {new_id} {doc['job']['status']} (re-run of {doc['rerun_of']})", file=out)
    if not args.wait:
        return EXIT_OK
    return _wait_for_job(client, new_id, out)


def list_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    params = {"status": args.status, "since": args.since, "cursor": args.cursor}
    params = {name: value for name, value in params.items() if value is not None}
    params["limit"] = str(args.limit)
    page = _call(client, "GET", f"{API}/jobs", params=params)
    for job in page["jobs"]:
        print(
            f"{job['job_id']}  {job['status']:<9} {job['progress']:>3}%  "
            f"{job['created_at']}  {job['message']}",
            file=out,
        )
    if page["next_cursor"] is not None:
        print(f"more jobs: --cursor {page['next_cursor']}", file=out)
    return EXIT_OK


def format_event(event: dict[str, Any]) -> str:
    """Format an event as one timeline line: id, time, type, attempt and what it changed."""
    return (
        f"{event['id']:<8} {event['at']}  {event['type']:<15} "
        f"attempt {event['attempt']}  {_describe(event)}"
    ).rstrip()


def format_progress(percent: int, message: str) -> str:
    filled = PROGRESS_BAR_WIDTH * max(0, min(100, percent)) // 100
    bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
    return f"[{bar}] {percent:>3}%  {message}"


def _describe(event: dict[str, Any]) -> str:
    data = event["data"]
    match event["type"]:
        case "created":
            text = f"params {json.dumps(data.get('params'))}"
            return text + (f", re-run of {data['rerun_of']}" if "rerun_of" in data else "")
        case "progress":
            return f"{data['percent']}% {data['message']}"
        case "attempt_failed" | "failed":
            return f"error: {data['error']}"
        case "completed":
            return f"result {json.dumps(data.get('result'))}"
        case "rerun_requested":
            return f"re-run as job {data['rerun_job_id']}"
    delivery = event.get("delivery") or {}
    retry = delivery.get("X-CloudTasks-TaskRetryCount")
    return f"task retry {retry}" if retry is not None else ""


def _wait_for_job(client: httpx.Client, job_id: str, out: TextIO) -> int:
    """Show a progress bar from the job's event stream until the job ends; return its exit code."""
    redraw = out.isatty()
    last_line = ""
    for message in follow(client, f"{API}/jobs/{job_id}/stream"):
        line = _progress_line(message)
        if line is None or line == last_line:
            continue
        last_line = line
        print(("\r" + line.ljust(100)) if redraw else line, end="" if redraw else "\n", file=out)
        out.flush()
    if redraw:
        print(file=out)
    job = _call(client, "GET", f"{API}/jobs/{job_id}")
    if job["status"] == "completed":
        print(f"job {job_id} completed: {json.dumps(job['result'])}", file=out)
        return EXIT_OK
    print(f"job {job_id} {job['status']}: {job['error'] or job['message']}", file=out)
    return EXIT_JOB_FAILED


def _progress_line(message: SseMessage) -> str | None:
    event = message.data
    data = event["data"]
    match event["type"]:
        case "started":
            return format_progress(0, f"running (attempt {event['attempt']})")
        case "progress":
            return format_progress(int(data["percent"]), str(data["message"]))
        case "attempt_failed":
            return format_progress(0, f"attempt {event['attempt']} failed: {data['error']}")
        case "completed":
            return format_progress(100, "completed")
        case "failed":
            return f"failed: {data['error']}"
    return None


def _call(client: httpx.Client, method: str, path: str, **request: Any) -> Any:
    response = client.request(method, path, **request)
    if response.is_success:
        return response.json()
    try:
        error = response.json().get("error", response.text)
    except ValueError:
        error = response.text
    raise ApiCallFailed(f"{method} {path} returned {response.status_code}: {error}")


if __name__ == "__main__":
    sys.exit(main())
