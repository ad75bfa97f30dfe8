"""The benchmark's report: docs/benchmarks.json (every figure) and docs/BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg2
import redis

from .config import DOCS, BenchConfig
from .seed import Seeded

PACKAGES = (
    "Django",
    "djangorestframework",
    "psycopg2-binary",
    "redis",
    "django-redis",
    "gunicorn",
    "uvicorn",
    "uvicorn-worker",
    "celery",
    "uvloop",
    "httptools",
    "hiredis",
    "orjson",
)


# Changes measured on a quieter machine, where the list's figures before them were: 700 req/s
# unpaced, web CPU 2.0 ms and PostgreSQL 0.59 ms per request, one-client p50 2.65 ms.
LATER_CHANGES = [
    "- **Fair accept** (`bo1site/server.py`, the Procfile's worker class): stock uvicorn"
    " workers take every waiting connection when they wake, and 8 connections opened together"
    " were split 8/0, 7/1 or 6/2 between the 2 processes in about a third of the runs, which"
    " capped the list near 400 req/s and sent the paced p50 to 15-21 ms in those runs. The"
    " worker now takes one connection per wake-up and waits 0.5 ms per connection it holds (at"
    " most 2 ms) before the next, so an idle worker takes the rest: 4/4 in every measured run.",
    "- **Hot-entry reads** (`sessions_app/cache.py`, `bo1site/jsoncodec.py`, hiredis and orjson"
    " pinned): the page's MGET goes to the raw client and is decoded with orjson (the cache"
    " backend looked up its connection and decoded key by key): 270 -> 75 us per page of 20."
    " The API renders with orjson, byte for byte what DRF's renderer writes.",
    "- **Query-string validation** (`sessions_app/api/serializers.py`): DRF deep-copies every"
    " field of a serializer per instance, which rebuilt the limit/offset validators on each"
    " request (a tenth of the list's CPU in a GIL-only profile); the query serializers now"
    " build their fields once per thread.",
    "- **Content negotiation** (`bo1site/negotiation.py`): requests that accept anything or"
    " plain JSON get the JSON renderer without parsing the Accept header (3% of the list's CPU).",
    "- **Health check** (`bo1site/db/base.py`): CONN_HEALTH_CHECKS sent `SELECT 1` before each"
    " request's first query; a poll of the idle socket answers the same question (a dropped"
    " connection makes it readable), so a list request makes 3 round trips to PostgreSQL, not 4.",
    "- Together, on the same data back to back: list 700 -> 880 req/s unpaced, web CPU per"
    " request 2.0 -> 1.5 ms, PostgreSQL 0.59 -> 0.52 ms, one-client p50 2.65 -> 2.1 ms.",
    "- **Prepared statements** (`bo1site/db/prepared.py`): the token lookup and the list's page"
    " and count are prepared once per connection and run with EXECUTE, so PostgreSQL no longer"
    " parses and plans them on every request: the three queries' server CPU 380 -> 230 us,"
    " their latency 630 -> 460 us. `DATABASE_PREPARED_STATEMENTS=0` switches it off behind a"
    " pooler in transaction mode.",
    "- **Create** (`sessions_app/services.py`): the INSERT, with the trigger that counts it, is"
    " atomic on its own, so it runs without BEGIN and COMMIT (two round trips fewer); the"
    " create serializer builds its fields once per thread. In-process CPU per create 1.44 ->"
    " 1.16 ms.",
    "- **Progress writes** (`sessions_app/services.py`, what the worker runs for every engine"
    " step): the locked read of the session leaves out the engine checkpoint, which each step"
    " writes but never reads and which grows with the transcript; with a 110 KB checkpoint, CPU"
    " per step 1.86 -> 1.54 ms, wall time 3.07 -> 2.49 ms.",
    "- **Progress writes, again**: the locked read is one statement written once from the"
    " model's metadata and prepared per connection (the row is built with the model's `from_db`"
    " and its fields' converters), and the step's stream events and hot entry go to Redis in one"
    " pipeline instead of two round trips. The publisher of the SSE run, which does nothing"
    " but these writes at 100 per second from 4 threads, measured 2.43-2.50 -> 1.73-1.80 ms of"
    " CPU per event (its `cpu_ms_per_event`, two runs of each on the same data).",
    "- **The bench's own SSE client** runs on uvloop and decodes with orjson: it shares the 2"
    " cores with what it measures, and its CPU while the list is measured went 0.61 -> 0.35 s"
    " per 10 s. The streams part now also records the CPU of the list's server and of"
    " PostgreSQL and Redis in that window, so the whole machine's use is on record.",
    "- **Paced load spread evenly** (`scripts/bench/wrk.lua`, `scripts/bench/publisher.py`):"
    " wrk's 2 threads each paced their half of the rate on the same schedule, so paced requests"
    " arrived in pairs at the same instant (the server's log showed two creates in the same"
    " millisecond every 20 ms at 100 requests/s), and the SSE run's 4 publisher threads wrote"
    " their events in bursts of 4. Each thread now takes its turn on one grid of the wall clock"
    " that wrk's own millisecond timers run on, and its delays are rounded up to whole"
    " milliseconds (a first version, on the monotonic clock with truncated delays, still sent a"
    " fifth of the requests at 500 requests/s within half an interval of the one before);"
    " `tests/bench/test_load_generator.py` checks the spacing at 100 and 500 requests/s. On this"
    " machine, the one full run with paired arrivals (20:43 UTC) against the runs after it:"
    " create p50 at 100 requests/s 5.37 -> 3.1-3.5 ms, list p50 at 500 requests/s 2.63 -> 2.2-2.3"
    " ms, the minimal app's 1.71 -> 1.35-1.4 ms, the streams' delivery p99 with the list 17.7 ->"
    " 7.5-44 ms; the create alone, on the same data in 10-s runs, 3.6-4.8 ms (16 runs) -> 3.0-3.3"
    " ms (6 runs). All runs in the table below up to 2026-11-25 20:43 UTC were measured with"
    " paired arrivals, and all but that last one on earlier machines. Create now also runs with"
    " random (Poisson) arrivals at the same rate, where requests meet by chance rather than every"
    " time (a note under the endpoint table).",
]


# What was changed in the application to reach these figures, and what each change measured
# (on this machine, while it was shared with other work; see docs/BENCHMARKS.md).
CHANGES = [
    "- **Worker model** (`bo1site/asgi_handler.py`, `bo1site/asgi.py`): under stock Django ASGI"
    " every request ran in a thread of its own and opened a new PostgreSQL connection"
    " (CONN_MAX_AGE had to be 0); sync views now run start to finish on a fixed pool of"
    " long-lived threads per process (WEB_THREADS, default 4), so connections persist and a"
    " request crosses between the event loop and a thread once each way. Async views (the"
    " event stream) keep Django's path. List: 42 -> about 80 req/s and one-client p50 46 -> 10"
    " ms before the other changes; server CPU per list request 13.7 -> 7.5 ms.",
    "- **Exact total in O(1)** (`sessions_app/migrations/0003_session_counts.py`,"
    " `SessionCount`): a trigger keeps per-user, per-status counts in the same transaction as"
    " every insert, delete and status change; the list's total sums at most 8 rows instead of"
    " an index-only scan over the user's 9,500 entries (2.3 ms in EXPLAIN ANALYZE, growing with"
    " the user's sessions).",
    "- **Prepared list SQL** (`sessions_app/selectors.py`): the list without a search runs SQL"
    " written once from the model's metadata and reads rows as tuples; composing the page and"
    " the count through the ORM cost 1.4 + 0.85 ms of CPU per request, against 0.24 + 0.23 ms"
    " for the same queries written once. The search path still uses the ORM.",
    "- **Token authentication** (`bo1site/authentication.py`): DRF's token check as one"
    " prepared join (0.67 -> about 0.2 ms CPU), same answers and still one PostgreSQL lookup per"
    " request, so a deleted token or a deactivated user is refused at once (no cache to"
    " invalidate).",
    "- Together, measured in-process on the same data: CPU per list request 8.1 -> 2.5-3.6 ms;"
    " over HTTP the list went from 42 req/s to 180-450 req/s in full runs at load averages of"
    " 3-5 (the spread is the machine's other load and the worker split, not the code).",
    "- **uvloop and httptools** (pinned in requirements/base.txt; uvicorn uses them when"
    " present): back to back on the same data, list 160-225 -> 240-345 req/s, web CPU per"
    " request 4.0-5.5 -> 3.6-4.7 ms.",
    *LATER_CHANGES,
]


def _meminfo_gib() -> float:
    with open("/proc/meminfo") as f:
        kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return round(kib / 1024 / 1024, 1)


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine(config: BenchConfig) -> dict[str, Any]:
    """What the numbers were measured on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    conn = psycopg2.connect(config.database_url)
    with conn, conn.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        shared_buffers = cursor.fetchone()[0]
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
    conn.close()
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (
            (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
        )
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _meminfo_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "postgresql_shared_buffers": shared_buffers,
        "postgresql_autovacuum": autovacuum,
        "redis": redis.Redis.from_url(config.redis_url).info("server")["redis_version"],
        "wrk": wrk_version,
        "packages": versions,
    }


def explain(config: BenchConfig, seeded: Seeded) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the list's queries, as the API runs them (second run: warm)."""
    page_sql = (
        "SELECT id, user_id, problem_statement, status, phase, round_number, total_cost, "
        "total_tokens, contribution_count, pause_reason, final_recommendation, created_at, "
        "updated_at, started_at, completed_at, last_activity_at FROM sessions "
        "WHERE user_id = %(u)s AND NOT (status = 'deleted') "
        "ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET 0"
    )
    queries = {
        "page": page_sql,
        "count (the API: per-status counters)": (
            "SELECT COALESCE(SUM(count), 0) FROM session_counts "
            "WHERE user_id = %(u)s AND NOT (status = 'deleted')"
        ),
        "count (for comparison: counting the rows)": (
            "SELECT count(*) FROM sessions WHERE user_id = %(u)s AND NOT (status = 'deleted')"
        ),
    }
    plans = {}
    conn = psycopg2.connect(config.database_url)
    with conn, conn.cursor() as cursor:
        for name, sql in queries.items():
            for _ in range(2):
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", {"u": seeded.hot_user_id})
                lines = [row[0] for row in cursor.fetchall()]
            plans[name] = "\n".join(lines)
    conn.close()
    return plans


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def budgets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every budget of issue 6 against what was measured."""
    http = results.get("http", {})
    rows: list[dict[str, Any]] = []

    def add(name: str, budget: str, figure: str, ok: bool | None) -> None:
        rows.append({"budget": name, "limit": budget, "measured": figure, "verdict": _verdict(ok)})

    failed = {
        f"{name} {kind}": m[kind]["errors"]
        for name, m in http.items()
        for kind in ("saturated", "paced", "single")
        if m.get(kind) and m[kind]["errors"]
    }
    if http:
        add("every HTTP run answered 2xx", "0 failed", str(failed or 0), not failed)
    lst = http.get("list")
    minimal = http.get("minimal_list")
    if lst:
        paced = lst["paced"]
        add(
            "list p50 at 500 req/s, 8 connections",
            "<= 4.5 ms",
            _ms(paced["p50"]),
            paced["p50"] <= 4.5 and paced["rps"] >= 0.95 * paced["rate"],
        )
        add(
            "list requests/s, 8 connections (unpaced)",
            ">= 500",
            f"{lst['saturated']['rps']:.0f} req/s",
            lst["saturated"]["rps"] >= 500,
        )
        exact = results.get("list_total")
        if exact:
            add(
                "list total is exact",
                "= count(*)",
                f"{exact['api']} vs {exact['sql']}",
                exact["api"] == exact["sql"],
            )
    if minimal:
        # The floor, read against the same budgets: what this machine allowed during the run.
        add(
            "(for reference) minimal app: p50 at 500 req/s / unpaced req/s",
            "-",
            f"{_ms(minimal['paced']['p50'])} at {minimal['paced']['rps']:.0f} req/s"
            f" / {minimal['saturated']['rps']:.0f} req/s",
            None,
        )
    if lst and minimal:
        rps_ratio = minimal["saturated"]["rps"] / max(lst["saturated"]["rps"], 1e-9)
        p50_ratio = lst["paced"]["p50"] / max(minimal["paced"]["p50"], 1e-9)
        add("list vs minimal app: throughput ratio", "<= 2x", f"{rps_ratio:.2f}x", rps_ratio <= 2)
        add(
            "list vs minimal app: p50 ratio at 500 req/s",
            "<= 2x",
            f"{p50_ratio:.2f}x",
            p50_ratio <= 2,
        )
    detail = http.get("detail_redis")
    if detail:
        add(
            "detail from Redis p50 at 500 req/s",
            "<= 3 ms",
            _ms(detail["paced"]["p50"]),
            detail["paced"]["p50"] <= 3,
        )
    create = http.get("create")
    if create:
        add(
            f"create p50 at {create['paced']['rate']:.0f} req/s",
            "<= 5 ms",
            _ms(create["paced"]["p50"]),
            create["paced"]["p50"] <= 5,
        )
    if lst and create and lst.get("cpu_ms_per_request") and create.get("cpu_ms_per_request"):
        list_cpu = lst["cpu_ms_per_request"] + (lst.get("db_cpu_ms_per_request") or 0)
        create_cpu = create["cpu_ms_per_request"] + (create.get("db_cpu_ms_per_request") or 0)
        ratio = create_cpu / list_cpu
        add(
            "create vs list page: server CPU (web + PostgreSQL) per request, unpaced",
            "<= 0.6x",
            f"{create_cpu:.2f} / {list_cpu:.2f} ms = {ratio:.2f}x",
            ratio <= 0.6,
        )
    streams = results.get("streams")
    if streams:
        client = streams["client"]
        complete = (
            client["connected_ok"] == streams["streams"]
            and client["gaps"] == 0
            and client["repeats"] == 0
            and client["events_received"] == streams["expected_deliveries"]
        )
        loaded = streams["delay_with_list_ms"]
        add(
            f"{streams['streams']} streams on one process: delivery p99 while the list runs",
            "<= 250 ms",
            _ms(loaded["p99"]),
            loaded["p99"] <= 250 and complete,
        )
        during = streams["list_during_streams"]
        add(
            "list p50 at 500 req/s while the streams run",
            "<= 4.5 ms",
            _ms(during["p50"]),
            during["p50"] <= 4.5 and during["rps"] >= 0.95 * during["rate"],
        )
    delib = results.get("deliberations")
    if delib:
        ok = (
            delib["finished"] == delib["deliberations"]
            and delib["statuses"].get("completed", 0) == delib["deliberations"]
            and delib["problem_count"] == 0
        )
        add(
            f"{delib['deliberations']} concurrent deliberations, {delib['worker_concurrency']} "
            "workers: all complete, nothing lost",
            "all complete, 0 problems",
            f"{delib['statuses']}, {delib['problem_count']} problems, {delib['total_seconds']} s",
            ok,
        )
    return rows


PLAN_ORDER = (
    "page",
    "count (the API: per-status counters)",
    "count (for comparison: counting the rows)",
)
ENDPOINT_ORDER = ("list", "minimal_list", "detail_redis", "detail_after_flush", "create", "events")


def _in_order(http: dict[str, Any]) -> list[tuple[str, Any]]:
    """The endpoints in the report's order (the JSON file keeps its keys sorted)."""
    rank = {name: n for n, name in enumerate(ENDPOINT_ORDER)}
    return sorted(http.items(), key=lambda item: rank.get(item[0], len(rank)))


def _endpoint_table(http: dict[str, Any]) -> list[str]:
    lines = [
        "| endpoint | unpaced req/s | unpaced p50 / p95 / p99 | paced rate | paced p50 / p95 / p99 "
        "| 1 client p50 | CPU per request unpaced: web / PostgreSQL | web CPU per request paced |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in _in_order(http):
        s, p, one = m["saturated"], m.get("paced"), m.get("single")
        lines.append(
            f"| {name} | {s['rps']:.0f} | {s['p50']:.2f} / {s['p95']:.2f} / {s['p99']:.2f} ms | "
            + (
                f"{p['rps']:.0f} req/s | {p['p50']:.2f} / {p['p95']:.2f} / {p['p99']:.2f} ms | "
                if p
                else "- | - | "
            )
            + (f"{one['p50']:.2f} ms | " if one else "- | ")
            + (
                f"{m['cpu_ms_per_request']:.2f} / {m.get('db_cpu_ms_per_request') or 0:.2f} ms |"
                if m.get("cpu_ms_per_request")
                else "- |"
            )
            + (
                f" {m['paced_cpu_ms_per_request']:.2f} ms |"
                if m.get("paced_cpu_ms_per_request")
                else " - |"
            )
        )
    return lines


HISTORY = "benchmarks-history.jsonl"


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """One line per run for the history: when, how loaded, the headline figures."""
    http = results.get("http", {})

    def pick(name: str, kind: str, field: str) -> float | None:
        run = (http.get(name) or {}).get(kind)
        return round(run[field], 2) if run else None

    streams = results.get("streams") or {}
    delib = results.get("deliberations") or {}
    return {
        "finished_at": results.get("finished_at"),
        "sessions": results.get("data", {}).get("sessions"),
        "load_average_start": results.get("load_average_start"),
        "list_rps": pick("list", "saturated", "rps"),
        "list_p50_paced_ms": pick("list", "paced", "p50"),
        "list_web_cpu_ms": (http.get("list") or {}).get("cpu_ms_per_request"),
        "minimal_rps": pick("minimal_list", "saturated", "rps"),
        "minimal_p50_paced_ms": pick("minimal_list", "paced", "p50"),
        "detail_redis_p50_paced_ms": pick("detail_redis", "paced", "p50"),
        "create_p50_paced_ms": pick("create", "paced", "p50"),
        "streams_p99_alone_ms": (streams.get("delay_streams_alone_ms") or {}).get("p99"),
        "streams_p99_with_list_ms": (streams.get("delay_with_list_ms") or {}).get("p99"),
        "list_p50_with_streams_ms": (streams.get("list_during_streams") or {}).get("p50"),
        "deliberations_completed": (delib.get("statuses") or {}).get("completed"),
        "deliberation_problems": delib.get("problem_count"),
    }


def _history_table(directory: Path) -> list[str]:
    path = directory / HISTORY
    if not path.exists():
        return []
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][-10:]

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    lines = [
        "## Runs so far (latest last; the machine's other load differs from run to run)",
        "",
        "| finished | load | list req/s | list p50 @500 | list web CPU | minimal req/s "
        "| minimal p50 @500 | detail p50 @500 | create p50 @100 | streams p99 alone / with list "
        "| list p50 @500 with streams | deliberations |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            "| "
            + " | ".join(
                [
                    cell(run.get("finished_at")),
                    cell(run.get("load_average_start")),
                    cell(run.get("list_rps")),
                    cell(run.get("list_p50_paced_ms")),
                    cell(run.get("list_web_cpu_ms")),
                    cell(run.get("minimal_rps")),
                    cell(run.get("minimal_p50_paced_ms")),
                    cell(run.get("detail_redis_p50_paced_ms")),
                    cell(run.get("create_p50_paced_ms")),
                    f"{cell(run.get('streams_p99_alone_ms'))} / "
                    f"{cell(run.get('streams_p99_with_list_ms'))}",
                    cell(run.get("list_p50_with_streams_ms")),
                    f"{cell(run.get('deliberations_completed'))} done, "
                    f"{cell(run.get('deliberation_problems'))} problems",
                ]
            )
            + " |"
        )
    return [*lines, ""]


def write(results: dict[str, Any], directory: Path = DOCS, *, record: bool = True) -> Path:
    """Write BENCHMARKS.md and benchmarks.json into `directory`; returns the Markdown's path.

    With `record`, the run's headline figures are also appended to benchmarks-history.jsonl.
    """
    directory.mkdir(exist_ok=True)
    if record:
        with (directory / HISTORY).open("a") as history:
            history.write(json.dumps(summary(results)) + "\n")
    results["budgets"] = budgets(results)
    (directory / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    data = results["data"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['finished_at']} by `make bench` ({results['command']}); every figure"
        " is also in `docs/benchmarks.json`, so runs can be compared.",
        "",
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}",
        f"- Python {m['python']}, PostgreSQL {m['postgresql']} (shared_buffers "
        f"{m['postgresql_shared_buffers']}"
        + {
            "off": ", autovacuum off: each run first vacuums what the previous one wrote",
            "on": ", autovacuum on",
        }.get(m.get("postgresql_autovacuum", ""), "")
        + f"), Redis {m['redis']}, {m['wrk']}",
        "- " + ", ".join(f"{k} {m['packages'][k]}" for k in PACKAGES if m["packages"].get(k)),
        "- not installed: " + (", ".join(k for k, v in m["packages"].items() if not v) or "-"),
        f"- load average (1 min) before the HTTP runs: {results.get('load_average_start', '-')}; "
        "the machine is shared with other work, so absolute figures move between runs",
        "",
        "## Data",
        "",
        f"- {data['sessions']:,} sessions over {data['users']:,} users; the measured user owns "
        f"{data['hot_user_sessions']:,} ({data['hot_visible']:,} not deleted); "
        f"{data['events']:,} events",
        f"- seeded in {data['seed_seconds']:.0f} s"
        + (" (reused from an earlier run)" if data["reused"] else ""),
        "",
        "## Budgets",
        "",
        "| budget | limit | measured | verdict |",
        "|---|---|---|---|",
    ]
    for row in results["budgets"]:
        lines.append(f"| {row['budget']} | {row['limit']} | {row['measured']} | {row['verdict']} |")
    lines += [
        "",
        "## How it is measured",
        "",
        "The web server and the worker are the Procfile's `web:` and `worker:` lines, started as"
        " child processes with `DJANGO_DEBUG=0` against the bench database (`bo1_bench`) and Redis"
        " databases of their own. Load comes from wrk (8 keep-alive connections, 2 threads) with"
        " `scripts/bench/wrk.lua`. Each endpoint runs three ways:",
        "",
        "- **unpaced**: as fast as the server answers; gives requests/s. With 8 connections"
        " always waiting, latency there is 8 / throughput (Little's law), not a budget figure;",
        "- **paced**: a fixed rate spread evenly over the same 8 connections (wrk's 2 threads"
        " take turns on one schedule, so at 100 requests/s a request arrives every 10 ms); the"
        " latency budgets are read here: 500 requests/s (the load the list budget names) for"
        " list and detail, 100 requests/s for create and events, 200 for the detail after a"
        " flush. Create also runs at 100 requests/s with random arrivals (a Poisson process, as"
        " from clients that know nothing of each other, so requests sometimes come together);",
        "- **1 client**: one connection, one request at a time.",
        "",
        "A keep-alive connection stays with the worker process that accepted it. With stock"
        " uvicorn workers the 8 connections were often split unevenly between the web server's 2"
        " processes (one process was seen to take all 8, halving what the list could do); the"
        " web server's worker class (`bo1site/server.py`) now shares a burst of connections"
        " between the processes, and the notes under the endpoint table give each run's CPU"
        " split. The list and the minimal app run in 3 interleaved rounds and the median round"
        " is reported, so a change in the machine's other load hits both alike.",
        "",
        '"CPU per request" is the CPU time (user + system) of the server\'s processes, and of the'
        " PostgreSQL backends serving its connections, during the unpaced run divided by its"
        " requests: what a request costs, less disturbed by other load on the machine than"
        " latency is. On 2 cores, 2,000 ms / (web + PostgreSQL ms) bounds the requests/s the"
        " machine could serve with nothing else running (Redis and the load generator aside).",
        "",
        "The minimal app (`scripts/bench/minimal_app.py`) does the list job with raw psycopg2 and"
        " redis-py under gunicorn in the same run: the same page query and exact count, one MGET,"
        " json.dumps.",
        "",
        "## HTTP endpoints",
        "",
        *_endpoint_table(results.get("http", {})),
        "",
    ]
    for name, m in _in_order(results.get("http", {})):
        for note in m.get("notes", []):
            lines.append(f"- {name}: {note}")
    streams = results.get("streams")
    if streams:
        c = streams["client"]
        published = streams["published"]
        watchers = streams["streams"] // max(streams["sessions"], 1)
        expected = streams["expected_deliveries"]
        lines += [
            "",
            "## SSE fan-out",
            "",
            f"{streams['streams']} streams (GET /api/v1/sessions/{{id}}/stream) held by one web"
            f" process, {streams['sessions']} sessions with {watchers} watchers each; events"
            " appended through `session_record_progress` (PostgreSQL, then the Redis stream on"
            " commit) at"
            f" {published['rate']:.0f} per second for {published['seconds']:.0f} s: first the"
            " streams alone, then while the list was measured at 500 req/s on the 2-process"
            " server.",
            "",
            f"- streams open: {c['connected_ok']} / {streams['streams']}; "
            f"errors: {c['error_count']}",
            f"- deliveries: {c['events_received']:,} of {expected:,} expected;"
            f" gaps {c['gaps']}, repeats {c['repeats']}; streams complete"
            f" {streams['streams_complete']} / {streams['streams']}",
            "- delivery delay (event created_at to client), streams alone:"
            f" p50 {streams['delay_streams_alone_ms']['p50']} ms,"
            f" p99 {streams['delay_streams_alone_ms']['p99']} ms;"
            " while the list was measured:"
            f" p50 {streams['delay_with_list_ms']['p50']} ms,"
            f" p99 {streams['delay_with_list_ms']['p99']} ms",
            f"- delivery delay over the whole run: p50 {c['delay_ms']['p50']} ms,"
            f" p90 {c['delay_ms']['p90']} ms, p99 {c['delay_ms']['p99']} ms,"
            f" max {c['delay_ms']['max']} ms",
            *(
                [
                    "- the publisher's CPU per event (`session_record_progress`, what a worker"
                    f" runs for each engine step): {published['cpu_ms_per_event']} ms"
                ]
                if "cpu_ms_per_event" in published
                else []
            ),
            f"- the stream process's CPU while events flowed: {streams['stream_process_cpu_s']} s,"
            f" {streams['stream_cpu_ms_per_delivery']} ms per delivered event",
            f"- list meanwhile: p50 {streams['list_during_streams']['p50']:.2f} ms, p99"
            f" {streams['list_during_streams']['p99']:.2f} ms at"
            f" {streams['list_during_streams']['rps']:.0f} req/s"
            + (
                f" (the median of {len(streams['list_during_streams_p50s'])} runs back to back,"
                f" whose p50s were {', '.join(map(str, streams['list_during_streams_p50s']))} ms)"
                if len(streams.get("list_during_streams_p50s", [])) > 1
                else ""
            ),
        ]
        during = streams.get("cpu_during_list_s")
        if during:
            own = f" the list's own server {during['list_web']} s," if "list_web" in during else ""
            lines.append(
                f"- CPU used while the list was measured ({during['seconds']} s on 2 cores, so"
                f" {2 * during['seconds']:g} CPU-seconds in all):"
                + own
                + f" the stream process {during['streams']} s, the bench's publisher"
                f" {during['publisher']} s, its 1,000-stream client {during['client']} s"
                + (
                    f", PostgreSQL {during['postgres']} s and Redis {during['redis']} s"
                    if "postgres" in during
                    else ""
                )
            )
    delib = results.get("deliberations")
    if delib:
        lines += [
            "",
            "## Concurrent deliberations",
            "",
            f"{delib['deliberations']} sessions created and started at once through the API,"
            f" run by the Procfile's worker with concurrency {delib['worker_concurrency']} and"
            " the offline provider.",
            "",
            f"- finished: {delib['finished']} / {delib['deliberations']} ({delib['statuses']}) in"
            f" {delib['total_seconds']} s from the first start request",
            f"- events written: {delib['events']:,}; transcript problems (gaps, repeats, wrong"
            f" first/last event): {delib['problem_count']}",
        ]
        lines += [f"  - {p}" for p in delib["problems"]]
    lines += ["", *_history_table(directory)]
    plans = results.get("explain", {})
    if plans:
        lines += ["", "## Query plans (EXPLAIN (ANALYZE, BUFFERS), the measured user)", ""]
        # The page, then the API's count, then the count it replaced.
        order = list(PLAN_ORDER)
        for name, plan in sorted(
            plans.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)
        ):
            lines += [f"### {name}", "", "```", plan, "```", ""]
    changes = results.get("changes", CHANGES)
    if changes:
        lines += ["## What was changed for these numbers", "", *changes, ""]
    text = "\n".join(lines).rstrip() + "\n"
    target = directory / "BENCHMARKS.md"
    target.write_text(re.sub(r"\n{3,}", "\n\n", text))
    return target


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
