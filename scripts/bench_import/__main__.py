"""`python -m scripts.bench_import`: time manage.py import_bo1 on a generated source.

Generates a source of the original service's shape (its real schema from the bo1 fixture's
pg.sql, then users, sessions, session_events and recommendations rows; Redis metadata and
events_history for the recently active share of the sessions, as TTLs leave them, and some
failed-events entries), imports it into an empty database of ours, and reports sessions/s,
events/s and the import's peak RSS. Results go to docs/IMPORT_BENCHMARK.md and
docs/import-benchmarks.jsonl. Run it under `flock /tmp/bo1-bench.lock`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from .generate import generate_postgres, generate_redis
from .stores import ROOT, Databases, ScratchRedis

logger = logging.getLogger("bench_import")

DOCS = ROOT / "docs"
BUDGET_SECONDS = 600
BUDGET_RSS_MB = 500


@dataclass
class Result:
    started_at: str
    sessions: int
    events: int
    redis_share: float
    generate_seconds: float
    import_seconds: float
    sessions_per_second: float
    events_per_second: float
    peak_rss_mb: float
    import_cpu_seconds: float | None
    rerun_seconds: float | None
    rerun_peak_rss_mb: float | None
    summary: dict[str, Any]
    rerun_summary: dict[str, Any] | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    cpus: int
    machine: str


def timed_import(
    argv: list[str], env: dict[str, str]
) -> tuple[float, float, dict[str, Any], float]:
    """Run the command; returns (seconds, its peak RSS in MB, its JSON summary, its CPU s)."""
    out = ROOT / "bench-artifacts" / f"import-{os.getpid()}.json"
    out.parent.mkdir(exist_ok=True)
    started = time.monotonic()
    with out.open("wb") as stdout:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 2):
        raise SystemExit(f"import_bo1 exited {process.returncode}; see {out}")
    summary = json.loads(out.read_text())
    return seconds, usage.ru_maxrss / 1024, summary, usage.ru_utime + usage.ru_stime


HISTORY = DOCS / "import-benchmarks.jsonl"


def write_docs(result: Result) -> None:
    with HISTORY.open("a") as f:
        f.write(json.dumps(asdict(result)) + "\n")
    render_docs()


def render_docs() -> None:
    """docs/IMPORT_BENCHMARK.md from every run in docs/import-benchmarks.jsonl."""
    runs = [json.loads(line) for line in HISTORY.read_text().splitlines() if line.strip()]
    result = argparse.Namespace(**runs[-1])
    rows = [
        "| when (UTC) | sessions | events | import | sessions/s | events/s | peak RSS | "
        "import's own CPU | rerun (no changes) | load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        rerun = f"{r['rerun_seconds']:.0f} s" if r.get("rerun_seconds") else "n/a"
        cpu = f"{r['import_cpu_seconds']:.0f} s" if r.get("import_cpu_seconds") else "n/a"
        rows.append(
            f"| {r['started_at'][:16]} | {r['sessions']:,} | {r['events']:,} | "
            f"{r['import_seconds']:.0f} s | {r['sessions_per_second']:.0f} | "
            f"{r['events_per_second']:,.0f} | {r['peak_rss_mb']:.0f} MB | {cpu} | {rerun} | "
            f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f} |"
        )
    full = result.sessions >= 100_000
    verdict = (
        f"Budget (100,000 sessions, 3,000,000 events: under {BUDGET_SECONDS // 60} min and "
        f"{BUDGET_RSS_MB} MB peak RSS): "
        + (
            (
                "met"
                if result.import_seconds < BUDGET_SECONDS and result.peak_rss_mb < BUDGET_RSS_MB
                else "NOT met"
            )
            + f" in the latest run ({result.import_seconds:.0f} s, {result.peak_rss_mb:.0f} MB)."
            if full
            else f"the latest run was smaller ({result.sessions:,} sessions), so it does not "
            "decide the budget; at its rate the full size would take "
            f"{100_000 / max(result.sessions_per_second, 1e-9):.0f} s."
        )
    )
    text = f"""# Import benchmark (`manage.py import_bo1`)

Written by `python -m scripts.bench_import` (run it as
`flock /tmp/bo1-bench.lock .venv/bin/python -m scripts.bench_import [--sessions N --events M]`).
It generates a source of the original service's shape: the real schema (the bo1 fixture's
`pg.sql`), {result.redis_share:.0%} of the sessions also in Redis (`metadata:` and a full
`events_history:` duplicating their PostgreSQL events, as for recently active sessions before
the TTL expires), some events only in `failed_events:queue`, three votes per completed session,
and the status mix of a long-running deployment. The import runs as its own process against an
empty database of ours (migrated) and its own Redis database; peak RSS is that process's
`ru_maxrss`. The indexes of the source that the import does not use (the GIN index on
`session_events.data` and the like) are dropped to make generation faster; the import reads
through the ones it uses.

{verdict}

This machine has {result.cpus} cores shared with other work: the load average before and after
each run is in the table, and figures move with it. Compare runs made back to back. "Import's
own CPU" is the command's process (user + system time); PostgreSQL's work for it (inserts,
indexes, the per-user count trigger) runs on the same cores besides. The command reads and merges
sessions on one thread while another writes the ones before (importer/writer.py), so its own
work and PostgreSQL's overlap; runs before 2026-12-06 took turns, one transaction after the
other.

{chr(10).join(rows)}

The rerun is the same command a second time: every session is read and merged again and found
unchanged, nothing is written.

Latest summary: `{json.dumps(result.summary["sessions"])}`, events imported
{result.summary["events_imported"]:,}.
"""
    (DOCS / "IMPORT_BENCHMARK.md").write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_import", description=__doc__)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument(
        "--redis-share", type=float, default=0.1, help="share of sessions also in Redis"
    )
    parser.add_argument("--no-rerun", action="store_true", help="skip the second (no-op) run")
    parser.add_argument("--no-docs", action="store_true", help="print, do not write docs/")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md from the recorded runs"
    )
    args = parser.parse_args(argv)
    if args.render:
        render_docs()
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    databases = Databases()
    redis_dbs = ScratchRedis()
    try:
        t0 = time.monotonic()
        databases.create()
        ids = generate_postgres(
            databases.source_url, sessions=args.sessions, events=args.events, users=args.users
        )
        generate_redis(redis_dbs.source_url, databases.source_url, ids, share=args.redis_share)
        generate_seconds = time.monotonic() - t0
        logger.info("source generated in %.0f s", generate_seconds)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bo1site.settings",
            "DATABASE_URL": databases.target_url,
            "REDIS_URL": redis_dbs.target_url,
            "DATABASE_PREPARED_STATEMENTS": "1",
            "DJANGO_DEBUG": "0",  # as a production host runs it (no query log kept)
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        argv_import = [
            sys.executable,
            "manage.py",
            "import_bo1",
            "--database-url",
            databases.source_url,
            "--redis-url",
            redis_dbs.source_url,
            "--json",
            "--no-progress",
        ]
        load_before = os.getloadavg()
        seconds, rss, summary, cpu = timed_import(argv_import, env)
        load_after = os.getloadavg()
        logger.info("imported in %.0f s, peak RSS %.0f MB: %s", seconds, rss, summary["sessions"])
        rerun_seconds = rerun_rss = rerun_summary = None
        if not args.no_rerun:
            rerun_seconds, rerun_rss, rerun_summary, _ = timed_import(argv_import, env)
            logger.info("rerun in %.0f s, peak RSS %.0f MB", rerun_seconds, rerun_rss)
        result = Result(
            started_at=started_at,
            sessions=args.sessions,
            events=summary["events_imported"],
            redis_share=args.redis_share,
            generate_seconds=round(generate_seconds, 1),
            import_seconds=round(seconds, 1),
            sessions_per_second=round(summary["sessions"]["imported"] / seconds, 1),
            events_per_second=round(summary["events_imported"] / seconds, 1),
            peak_rss_mb=round(rss, 1),
            import_cpu_seconds=round(cpu, 1),
            rerun_seconds=round(rerun_seconds, 1) if rerun_seconds else None,
            rerun_peak_rss_mb=round(rerun_rss, 1) if rerun_rss else None,
            summary=summary,
            rerun_summary=rerun_summary,
            load_before=load_before,
            load_after=load_after,
            cpus=os.cpu_count() or 0,
            machine=f"{platform.machine()} {platform.python_version()}",
        )
        print(json.dumps(asdict(result), indent=2))
        if not args.no_docs:
            write_docs(result)
    finally:
        if not args.keep:
            databases.drop()
        redis_dbs.close(flush=not args.keep)


if __name__ == "__main__":
    main()
