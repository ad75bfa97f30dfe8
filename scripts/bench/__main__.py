"""`python -m scripts.bench`: seed, start the real servers, measure, write docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
import urllib.request
from typing import Any

import psycopg2

from . import http_parts, report
from .config import ARTIFACTS, DOCS, BenchConfig, bench_database_url
from .deliberations import run_deliberations
from .history import run_history
from .load import ensure_wrk
from .seed import Seeded, seed
from .servers import start_minimal, start_web
from .streams import run_streams

logger = logging.getLogger("bench")

PARTS = ("list", "detail", "create", "events", "minimal", "streams", "deliberations", "history")
QUICK = {"sessions": 20_000, "users": 50, "hot_user_sessions": 2_000}


def parse_args(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--hot-user-sessions", type=int, default=10_000)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 20,000 sessions, short runs, 100 streams, 10 deliberations; its "
        "report goes to bench-artifacts/, not docs/",
    )
    parser.add_argument("--skip-seed", action="store_true", help="use the seeded data as it is")
    parser.add_argument(
        "--only", default="", help=f"comma-separated parts to run, of: {', '.join(PARTS)}"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run")
    args = parser.parse_args(argv)
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = only - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    config = BenchConfig(
        sessions=args.sessions,
        users=args.users,
        hot_user_sessions=args.hot_user_sessions,
        quick=args.quick,
        skip_seed=args.skip_seed,
        only=only,
    )
    if args.quick:
        config.sessions, config.users = QUICK["sessions"], QUICK["users"]
        config.hot_user_sessions = QUICK["hot_user_sessions"]
        config.duration, config.streams, config.deliberations = 2.0, 100, 10
        config.database_url = bench_database_url(quick=True)
    if args.duration:
        config.duration = args.duration
    return config


def list_total(config: BenchConfig, seeded: Seeded, base: str) -> dict[str, int]:
    """The API's `total` next to a count(*) of the same rows."""
    request = urllib.request.Request(
        base + http_parts.LIST_PATH, headers={"Authorization": f"Token {seeded.hot_token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        api = int(json.loads(response.read())["total"])
    conn = psycopg2.connect(config.database_url)
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM sessions WHERE user_id = %s AND status <> 'deleted'",
            [seeded.hot_user_id],
        )
        sql = int(cursor.fetchone()[0])
    conn.close()
    return {"api": api, "sql": sql}


def run_http(config: BenchConfig, seeded: Seeded, results: dict[str, Any]) -> None:
    http: dict[str, Any] = results.setdefault("http", {})
    web, base = start_web(config, workers=2)
    try:
        results["load_average_start"] = http_parts.load_average()
        minimal = minimal_base = None
        if config.wants("minimal"):
            minimal, minimal_base = start_minimal(
                config, {seeded.hot_token: seeded.hot_user_id}, workers=2
            )
        try:
            if config.wants("list") or config.wants("minimal"):
                for measured in http_parts.run_list_and_minimal(
                    config,
                    seeded,
                    base,
                    web if config.wants("list") else None,
                    minimal_base,
                    minimal,
                ):
                    if config.wants(measured.name.replace("minimal_list", "minimal")):
                        http[measured.name] = measured.as_dict()
                results["list_total"] = list_total(config, seeded, base)
        finally:
            if minimal is not None:
                minimal.stop()
        if config.wants("detail"):
            for measured in http_parts.run_detail(config, seeded, base, web):
                http[measured.name] = measured.as_dict()
        if config.wants("create"):
            http["create"] = http_parts.run_create(config, seeded, base, web).as_dict()
        if config.wants("events"):
            http["events"] = http_parts.run_events(config, seeded, base, web).as_dict()
        if config.wants("streams"):
            results["streams"] = run_streams(config, seeded, base, web)
        if config.wants("deliberations"):
            results["deliberations"] = run_deliberations(config, seeded, base)
        if config.wants("history"):
            results["history"] = run_history(config, seeded, base, web)
    finally:
        web.stop()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench %(message)s")
    config = parse_args(argv)
    started = time.monotonic()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    ensure_wrk()
    seeded = seed(config)
    logger.info(
        "data: %d sessions, %d events, hot user %d visible (seed %.0f s%s)",
        seeded.sessions,
        seeded.events,
        seeded.hot_visible,
        seeded.seconds,
        ", reused" if seeded.reused else "",
    )
    results: dict[str, Any] = {
        "command": " ".join(
            ["python -m scripts.bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started_at": report.timestamp(),
        "machine": report.machine(config),
        "data": {
            "sessions": seeded.sessions,
            "users": seeded.users,
            "hot_user_sessions": config.hot_user_sessions,
            "hot_visible": seeded.hot_visible,
            "events": seeded.events,
            "seed_seconds": seeded.seconds,
            "reused": seeded.reused,
        },
        "config": {
            "connections": config.connections,
            "duration_s": config.duration,
            "paced_rate": http_parts.PACED_RATE,
            "streams": config.streams,
            "deliberations": config.deliberations,
            "worker_concurrency": config.workers,
        },
    }
    run_http(config, seeded, results)
    results["explain"] = report.explain(config, seeded)
    results["finished_at"] = report.timestamp()
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    # A smoke run's small figures never replace the published full-size ones.
    written = report.write(results, ARTIFACTS if config.quick else DOCS)
    print(f"\nbench finished in {results['elapsed_seconds']:.0f} s; {written} written\n")
    for row in results["budgets"]:
        print(f"  {row['verdict']:4}  {row['budget']}: {row['measured']} (budget {row['limit']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
