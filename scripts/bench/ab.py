"""The code before a change against this checkout, in turns: `python -m scripts.bench.ab
--before DIR`.

Two full `make bench` runs made one after the other are minutes apart, and on a shared 2-core
machine the speed of the machine itself moves more than a change does between them. Here both
web servers run at once (the Procfile's `web:` line of each checkout, each against its own
bench database, seeded by a `make bench` of that checkout beforehand) and every endpoint is
measured on one, then on the other, round after round, so whatever the machine does hits both
alike. It reports, per endpoint, the median round of each: unpaced requests/s, CPU per request
(web and PostgreSQL) and the paced p50; results go to bench-artifacts/ab.json, and with
`--docs` to docs/benchmarks-ab.json, which BENCHMARKS.md shows (report.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import threading
from pathlib import Path
from typing import Any

from .config import ARTIFACTS, DOCS, BenchConfig, bench_database_url
from .http_parts import CREATE_BODY, LIST_PATH, PACED_RATE, PACED_RATES, Target, prime
from .http_parts import hot_session_ids as session_ids
from .seed import connect, describe
from .servers import Server, free_port, http_ok, process_cpu_seconds, procfile_line

logger = logging.getLogger("bench")

ENDPOINTS = ("list", "detail_redis", "create", "events")


def start_web_of(root: Path, config: BenchConfig) -> tuple[Server, str]:
    """The Procfile web line of the checkout at `root`, with that checkout's own virtualenv."""
    port = free_port()
    env = config.child_env(PORT=str(port), WEB_CONCURRENCY="2")
    env["PATH"] = f"{root / '.venv' / 'bin'}:{env['PATH']}"
    line = procfile_line("web", root)
    server = Server(f"ab-{root.name}", ["sh", "-c", f"exec {line}"], env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    server.wait_for(lambda: http_ok(f"{base}/api/health"), timeout=60, what="GET /api/health")
    return server, base


def targets(config: BenchConfig, base: str, server: Server) -> dict[str, Target]:
    conn = connect(config.database_url)
    seeded = describe(conn, 0.0, True)
    conn.close()
    ids = session_ids(config, seeded, with_events=False)
    with_events = session_ids(config, seeded, with_events=True)[:1000]
    prime(base, seeded.hot_token, [f"/api/v1/sessions/{i}" for i in ids[:1000]])
    hot = seeded.hot_token
    return {
        "list": Target("list", base, [LIST_PATH], hot, server),
        "detail_redis": Target(
            "detail_redis", base, [f"/api/v1/sessions/{i}" for i in ids[:1000]], hot, server
        ),
        "create": Target(
            "create", base, ["/api/v1/sessions"], seeded.writer_token, server, "POST", CREATE_BODY
        ),
        "events": Target(
            "events", base, [f"/api/v1/sessions/{i}/events" for i in with_events], hot, server
        ),
    }


def backends(config: BenchConfig) -> list[int]:
    conn = connect(config.database_url)
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    conn.close()
    return pids


def measure(config: BenchConfig, target: Target) -> dict[str, float]:
    db = backends(config)
    web0, db0 = target.server.cpu_seconds(), process_cpu_seconds(db)
    run = target.run(config)
    web_ms = 1000 * (target.server.cpu_seconds() - web0) / max(run.requests, 1)
    db_ms = 1000 * (process_cpu_seconds(db) - db0) / max(run.requests, 1)
    paced = target.run(config, rate=PACED_RATES.get(target.name, PACED_RATE))
    return {"rps": run.rps, "web_ms": web_ms, "db_ms": db_ms, "p50": paced.p50}


def measure_together(
    configs: dict[str, BenchConfig], pair: dict[str, Target]
) -> dict[str, dict[str, float]]:
    """Both servers loaded at once, 4 connections each, for the same seconds: whatever the
    machine does meanwhile, both meet it. Returns each side's req/s and CPU per request."""
    db = {side: backends(configs[side]) for side in pair}
    start = {
        side: (target.server.cpu_seconds(), process_cpu_seconds(db[side]))
        for side, target in pair.items()
    }
    runs: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=lambda side=side: runs.__setitem__(
                side, pair[side].run(configs[side], connections=4)
            )
        )
        for side in pair
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = {}
    for side, target in pair.items():
        requests = max(runs[side].requests, 1)
        web0, db0 = start[side]
        found[side] = {
            "rps": runs[side].rps,
            "web_ms": 1000 * (target.server.cpu_seconds() - web0) / requests,
            "db_ms": 1000 * (process_cpu_seconds(db[side]) - db0) / requests,
        }
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.ab", description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument(
        "--before-database", default="", help="its bench database URL (default: bo1_bench_before)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--together",
        action="store_true",
        help="load both servers at once (4 connections each) instead of in turns; no p50",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--docs", action="store_true", help="also write docs/benchmarks-ab.json")
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(ENDPOINTS)}")
    args = parser.parse_args(argv)
    endpoints = [e for e in ENDPOINTS if not args.only or e in args.only.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench %(message)s")
    after_config = BenchConfig(duration=args.duration)
    before_url = (
        args.before_database or bench_database_url().rsplit("/", 1)[0] + "/bo1_bench_before"
    )
    before_config = BenchConfig(duration=args.duration, database_url=before_url)
    servers = {
        "before": start_web_of(args.before.resolve(), before_config),
        "after": start_web_of(Path(__file__).resolve().parents[2], after_config),
    }
    configs = {"before": before_config, "after": after_config}
    try:
        plan = {
            side: targets(configs[side], base, server) for side, (server, base) in servers.items()
        }
        for side in plan:
            for target in plan[side].values():
                target.run(configs[side], seconds=2.0)  # warm-up
        rounds: dict[str, dict[str, list[dict[str, float]]]] = {
            side: {name: [] for name in endpoints} for side in plan
        }
        for number in range(args.rounds):
            for name in endpoints:
                if args.together:
                    both = measure_together(configs, {side: plan[side][name] for side in plan})
                    for side, figures in both.items():
                        rounds[side][name].append(figures)
                    continue
                for side in ("before", "after") if number % 2 == 0 else ("after", "before"):
                    rounds[side][name].append(measure(configs[side], plan[side][name]))
            logger.info("round %d of %d done", number + 1, args.rounds)
    finally:
        for server, _ in servers.values():
            server.stop()
    result = {
        "rounds": args.rounds,
        "duration_s": args.duration,
        "together": args.together,
        "before": str(args.before),
        "medians": {
            side: {
                name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                for name, runs in by_name.items()
            }
            for side, by_name in rounds.items()
        },
        "runs": rounds,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "ab.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.docs:
        (DOCS / "benchmarks-ab.json").write_text(json.dumps(result, indent=2) + "\n")
    for name in endpoints:
        b, a = result["medians"]["before"][name], result["medians"]["after"][name]
        print(
            f"{name:13} req/s {b['rps']:7.0f} -> {a['rps']:7.0f}   web ms {b['web_ms']:.3f} -> "
            f"{a['web_ms']:.3f}   pg ms {b['db_ms']:.3f} -> {a['db_ms']:.3f}   "
            f"p50 {b.get('p50', 0):.2f} -> {a.get('p50', 0):.2f}"
        )


if __name__ == "__main__":
    main()
