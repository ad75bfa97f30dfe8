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

from .config import DOCS, ROOT, BenchConfig
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


# What was changed to reach the figures, and what each change measured, is history: it lives in
# docs/PERFORMANCE-HISTORY.md, which the report links to.
HISTORY_DOC = "PERFORMANCE-HISTORY.md"


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
    """EXPLAIN (ANALYZE, BUFFERS) of the list's queries as the application builds them
    (scripts/bench/app_queries.py), each run twice (the second, warm, is shown)."""
    built = subprocess.run(
        [config.python, "-m", "scripts.bench.app_queries", str(seeded.hot_user_id)],
        cwd=ROOT,
        env=config.child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    queries = json.loads(built.stdout)
    queries["count (for comparison: counting the rows)"] = (
        f"SELECT count(*) FROM sessions WHERE user_id = {int(seeded.hot_user_id)}"
        " AND NOT (status = 'deleted')"
    )
    plans = {}
    conn = psycopg2.connect(config.database_url)
    with conn, conn.cursor() as cursor:
        for name, sql in queries.items():
            for _ in range(2):
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")  # no parameters: no % to escape
                lines = [row[0] for row in cursor.fetchall()]
            plans[name] = "\n".join(lines)
    conn.close()
    return plans


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


Budget = tuple[str, str, str, bool | None]


def _row(name: str, limit: str, figure: str, ok: bool | None) -> dict[str, Any]:
    return {"budget": name, "limit": limit, "measured": figure, "verdict": _verdict(ok)}


def _paced_ok(run: dict[str, Any], p50_limit: float) -> bool:
    """A paced run's p50 is within the limit, at (nearly) the rate it was asked for."""
    return run["p50"] <= p50_limit and run["rps"] >= 0.95 * run["rate"]


def _failed_runs(http: dict[str, Any]) -> list[Budget]:
    failed = {
        f"{name} {kind}": m[kind]["errors"]
        for name, m in http.items()
        for kind in ("saturated", "paced", "single")
        if m.get(kind) and m[kind]["errors"]
    }
    return [("every HTTP run answered 2xx", "0 failed", str(failed or 0), not failed)]


def _list_budgets(lst: dict[str, Any], exact: dict[str, Any] | None) -> list[Budget]:
    paced, saturated = lst["paced"], lst["saturated"]
    rows: list[Budget] = [
        ("list p50 at 500 req/s, 8 connections", "<= 4.5 ms", _ms(paced["p50"]),
         _paced_ok(paced, 4.5)),
        ("list requests/s, 8 connections (unpaced)", ">= 500", f"{saturated['rps']:.0f} req/s",
         saturated["rps"] >= 500),
    ]  # fmt: skip
    if exact:
        figure = f"{exact['api']} vs {exact['sql']}"
        rows.append(("list total is exact", "= count(*)", figure, exact["api"] == exact["sql"]))
    return rows


def _minimal_budgets(lst: dict[str, Any] | None, minimal: dict[str, Any]) -> list[Budget]:
    # The floor, read against the same budgets: what this machine allowed during the run.
    rows: list[Budget] = [
        ("(for reference) minimal app: p50 at 500 req/s / unpaced req/s", "-",
         f"{_ms(minimal['paced']['p50'])} at {minimal['paced']['rps']:.0f} req/s"
         f" / {minimal['saturated']['rps']:.0f} req/s", None),
    ]  # fmt: skip
    if lst:
        rps_ratio = minimal["saturated"]["rps"] / max(lst["saturated"]["rps"], 1e-9)
        p50_ratio = lst["paced"]["p50"] / max(minimal["paced"]["p50"], 1e-9)
        rows += [
            ("list vs minimal app: throughput ratio", "<= 2x", f"{rps_ratio:.2f}x",
             rps_ratio <= 2),
            ("list vs minimal app: p50 ratio at 500 req/s", "<= 2x", f"{p50_ratio:.2f}x",
             p50_ratio <= 2),
        ]  # fmt: skip
    return rows


def _http_budgets(results: dict[str, Any]) -> list[Budget]:
    http = results.get("http", {})
    rows = _failed_runs(http) if http else []
    lst, minimal = http.get("list"), http.get("minimal_list")
    if lst:
        rows += _list_budgets(lst, results.get("list_total"))
    if minimal:
        rows += _minimal_budgets(lst, minimal)
    if detail := http.get("detail_redis"):
        p50 = detail["paced"]["p50"]
        rows.append(("detail from Redis p50 at 500 req/s", "<= 3 ms", _ms(p50), p50 <= 3))
    if create := http.get("create"):
        paced = create["paced"]
        name = f"create p50 at {paced['rate']:.0f} req/s"
        rows.append((name, "<= 5 ms", _ms(paced["p50"]), paced["p50"] <= 5))
    if lst and create:
        rows += _create_cost_budgets(lst, create)
    return rows


def _server_cpu(measured: dict[str, Any]) -> float | None:
    """Web + PostgreSQL CPU per request in the unpaced run, in ms."""
    if not measured.get("cpu_ms_per_request"):
        return None
    return float(measured["cpu_ms_per_request"] + (measured.get("db_cpu_ms_per_request") or 0))


def _create_cost_budgets(lst: dict[str, Any], create: dict[str, Any]) -> list[Budget]:
    list_cpu, create_cpu = _server_cpu(lst), _server_cpu(create)
    if list_cpu is None or create_cpu is None:
        return []
    ratio = create_cpu / list_cpu
    name = "create vs list page: server CPU (web + PostgreSQL) per request, unpaced"
    figure = f"{create_cpu:.2f} / {list_cpu:.2f} ms = {ratio:.2f}x"
    return [(name, "<= 0.6x", figure, ratio <= 0.6)]


def _stream_budgets(streams: dict[str, Any]) -> list[Budget]:
    client = streams["client"]
    complete = (
        client["connected_ok"] == streams["streams"]
        and client["gaps"] == 0
        and client["repeats"] == 0
        and client["events_received"] == streams["expected_deliveries"]
    )
    loaded, during = streams["delay_with_list_ms"], streams["list_during_streams"]
    return [
        (f"{streams['streams']} streams on one process: delivery p99 while the list runs",
         "<= 250 ms", _ms(loaded["p99"]), loaded["p99"] <= 250 and complete),
        ("list p50 at 500 req/s while the streams run", "<= 4.5 ms", _ms(during["p50"]),
         _paced_ok(during, 4.5)),
    ]  # fmt: skip


def _deliberation_budgets(delib: dict[str, Any]) -> list[Budget]:
    ok = (
        delib["finished"] == delib["deliberations"]
        and delib["statuses"].get("completed", 0) == delib["deliberations"]
        and delib["problem_count"] == 0
    )
    name = (
        f"{delib['deliberations']} concurrent deliberations, {delib['worker_concurrency']} "
        "workers: all complete, nothing lost"
    )
    figure = f"{delib['statuses']}, {delib['problem_count']} problems, {delib['total_seconds']} s"
    return [(name, "all complete, 0 problems", figure, ok)]


def _history_budgets(history: dict[str, Any]) -> list[Budget]:
    """Issue 16: search, cursor pages and the list during a purge."""
    word, phrase = history["search"]["search_word"], history["search"]["search_phrase"]
    cursor, purge = history["cursor"], history["purge"]
    return [
        (f"search p50 at 100 req/s, one word ({word['query']}, {word['matches']} matches)",
         "<= 15 ms", _ms(word["paced"]["p50"]), _paced_ok(word["paced"], 15)),
        (f"search p50 at 100 req/s, a phrase ({phrase['query']}, {phrase['matches']} matches)",
         "<= 25 ms", _ms(phrase["paced"]["p50"]), _paced_ok(phrase["paced"], 25)),
        (f"list p50 at cursor page {cursor['page']} vs page 1 (500 req/s)", "<= 1.2x",
         f"{cursor['ratio']:.2f}x ({_ms(cursor['page_400']['p50'])} vs "
         f"{_ms(cursor['page_1']['p50'])})", cursor["ratio"] <= 1.2),
        (f"list p50 during a purge of {purge['sessions']:,} sessions vs without", "<= 2x",
         f"{purge['ratio']:.2f}x ({_ms(purge['during_p50'])} vs {_ms(purge['without_p50'])})",
         purge["ratio"] <= 2 and purge["errors_during"] == 0),
    ]  # fmt: skip


def budgets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every budget of issues 6 and 16 against what was measured."""
    rows = _http_budgets(results)
    if streams := results.get("streams"):
        rows += _stream_budgets(streams)
    if delib := results.get("deliberations"):
        rows += _deliberation_budgets(delib)
    if history := results.get("history"):
        rows += _history_budgets(history)
    return [_row(*row) for row in rows]


PLAN_ORDER = (
    "list page",
    "list total (the per-status counters)",
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


def _machine_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    autovacuum = {
        "off": ", autovacuum off: each run first vacuums what the previous one wrote",
        "on": ", autovacuum on",
    }.get(m.get("postgresql_autovacuum", ""), "")
    return [
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}",
        f"- Python {m['python']}, PostgreSQL {m['postgresql']} (shared_buffers "
        f"{m['postgresql_shared_buffers']}" + autovacuum + f"), Redis {m['redis']}, {m['wrk']}",
        "- " + ", ".join(f"{k} {m['packages'][k]}" for k in PACKAGES if m["packages"].get(k)),
        "- not installed: " + (", ".join(k for k, v in m["packages"].items() if not v) or "-"),
        f"- load average (1 min) before the HTTP runs: {results.get('load_average_start', '-')}; "
        "the machine is shared with other work, so absolute figures move between runs",
        "",
    ]


def _data_lines(data: dict[str, Any]) -> list[str]:
    return [
        "## Data",
        "",
        f"- {data['sessions']:,} sessions over {data['users']:,} users; the measured user owns "
        f"{data['hot_user_sessions']:,} ({data['hot_visible']:,} not deleted); "
        f"{data['events']:,} events",
        f"- seeded in {data['seed_seconds']:.0f} s"
        + (" (reused from an earlier run)" if data["reused"] else ""),
        "",
    ]


def _budget_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Budgets", "", "| budget | limit | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {r['budget']} | {r['limit']} | {r['measured']} | {r['verdict']} |" for r in rows]
    return lines


METHOD = [
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
    " web server's worker class (`bo1site/serving/worker.py`) now shares a burst of connections"
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
]


def _http_lines(http: dict[str, Any]) -> list[str]:
    lines = ["## HTTP endpoints", "", *_endpoint_table(http), ""]
    for name, m in _in_order(http):
        lines += [f"- {name}: {note}" for note in m.get("notes", [])]
    return lines


def _list_meanwhile(streams: dict[str, Any]) -> str:
    during, p50s = streams["list_during_streams"], streams.get("list_during_streams_p50s", [])
    line = (
        f"- list meanwhile: p50 {during['p50']:.2f} ms, p99 {during['p99']:.2f} ms at"
        f" {during['rps']:.0f} req/s"
    )
    if len(p50s) > 1:
        line += (
            f" (the median of {len(p50s)} runs back to back,"
            f" whose p50s were {', '.join(map(str, p50s))} ms)"
        )
    return line


def _cpu_during_list(during: dict[str, Any]) -> str:
    own = f" the list's own server {during['list_web']} s," if "list_web" in during else ""
    stores = (
        f", PostgreSQL {during['postgres']} s and Redis {during['redis']} s"
        if "postgres" in during
        else ""
    )
    return (
        f"- CPU used while the list was measured ({during['seconds']} s on 2 cores, so"
        f" {2 * during['seconds']:g} CPU-seconds in all):"
        + own
        + f" the stream process {during['streams']} s, the bench's publisher"
        f" {during['publisher']} s, its 1,000-stream client {during['client']} s" + stores
    )


def _stream_lines(streams: dict[str, Any]) -> list[str]:
    c, published = streams["client"], streams["published"]
    watchers = streams["streams"] // max(streams["sessions"], 1)
    alone, loaded = streams["delay_streams_alone_ms"], streams["delay_with_list_ms"]
    lines = [
        "",
        "## SSE fan-out",
        "",
        f"{streams['streams']} streams (GET /api/v1/sessions/{{id}}/stream) held by one web"
        f" process, {streams['sessions']} sessions with {watchers} watchers each; events"
        " appended through `session_record_progress` (PostgreSQL, then the Redis stream on"
        f" commit) at {published['rate']:.0f} per second for {published['seconds']:.0f} s:"
        " first the streams alone, then while the list was measured at 500 req/s on the"
        " 2-process server.",
        "",
        f"- streams open: {c['connected_ok']} / {streams['streams']}; errors: {c['error_count']}",
        f"- deliveries: {c['events_received']:,} of {streams['expected_deliveries']:,} expected;"
        f" gaps {c['gaps']}, repeats {c['repeats']}; streams complete"
        f" {streams['streams_complete']} / {streams['streams']}",
        "- delivery delay (event created_at to client), streams alone:"
        f" p50 {alone['p50']} ms, p99 {alone['p99']} ms; while the list was measured:"
        f" p50 {loaded['p50']} ms, p99 {loaded['p99']} ms",
        f"- delivery delay over the whole run: p50 {c['delay_ms']['p50']} ms,"
        f" p90 {c['delay_ms']['p90']} ms, p99 {c['delay_ms']['p99']} ms,"
        f" max {c['delay_ms']['max']} ms",
    ]
    if "cpu_ms_per_event" in published:
        lines.append(
            "- the publisher's CPU per event (`session_record_progress`, what a worker"
            f" runs for each engine step): {published['cpu_ms_per_event']} ms"
        )
    lines += [
        f"- the stream process's CPU while events flowed: {streams['stream_process_cpu_s']} s,"
        f" {streams['stream_cpu_ms_per_delivery']} ms per delivered event",
        _list_meanwhile(streams),
    ]
    if during := streams.get("cpu_during_list_s"):
        lines.append(_cpu_during_list(during))
    return lines


def _deliberation_lines(delib: dict[str, Any]) -> list[str]:
    return [
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
        *(f"  - {problem}" for problem in delib["problems"]),
    ]


def _plan_lines(plans: dict[str, str]) -> list[str]:
    if not plans:
        return []
    lines = ["", "## Query plans (EXPLAIN (ANALYZE, BUFFERS), the measured user)", ""]
    # The page, the API's count and the count it replaced; then the cursor page and searches.
    order = list(PLAN_ORDER)
    for name, plan in sorted(
        plans.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)
    ):
        lines += [f"### {name}", "", "```", plan, "```", ""]
    return lines


COMPARISON = "benchmarks-comparison.json"
AB = "benchmarks-ab.json"
WORSE = 0.10  # a figure this much worse than before is marked


def change(before: float | None, after: float | None, higher: bool) -> tuple[str, bool]:
    """The change as text, and whether it is more than WORSE worse."""
    if before is None or after is None or before == 0:
        return "-", False
    ratio = after / before - 1
    worse = -ratio if higher else ratio
    return f"{ratio:+.0%}", worse > WORSE


def comparison_lines(comparison: dict[str, Any]) -> list[str]:
    """The comparison as Markdown lines for BENCHMARKS.md."""
    before, after = comparison["before"], comparison["after"]
    higher = set(after["higher_is_better"])
    lines = [
        f"## {comparison['title']}",
        "",
        comparison.get("note", ""),
        "",
        f"Before: {before['label']}, {before['started_at']} to {before['finished_at']} (load "
        f"average {before['load_average_start']} at the start). After: {after['label']}, "
        f"{after['started_at']} to {after['finished_at']} (load average "
        f"{after['load_average_start']}). Figures more than {WORSE:.0%} worse are marked.",
        "",
        "| figure | before | after | change |",
        "|---|---|---|---|",
    ]
    for name, value in after["figures"].items():
        old = before["figures"].get(name)
        text, marked = change(old, value, name in higher)
        cell = lambda v: "-" if v is None else f"{v:,.2f}"  # noqa: E731
        lines.append(f"| {name} | {cell(old)} | {cell(value)} | {text}{' (worse)' * marked} |")
    lines += ["", "| budget | before | after |", "|---|---|---|"]
    old_budgets = {row["budget"]: row for row in before["budgets"]}
    for row in after["budgets"]:
        old = old_budgets.get(row["budget"])
        old_text = f"{old['verdict']} ({old['measured']})" if old else "(not measured)"
        lines.append(f"| {row['budget']} | {old_text} | {row['verdict']} ({row['measured']}) |")
    return [*lines, ""]


def _comparison(directory: Path) -> list[str]:
    """The before/after tables of docs/benchmarks-comparison.json (scripts/bench/compare.py)
    and docs/benchmarks-ab.json (scripts/bench/ab.py)."""
    path = directory / COMPARISON
    lines = comparison_lines(json.loads(path.read_text())) if path.exists() else []
    path = directory / AB
    return lines + (ab_lines(json.loads(path.read_text())) if path.exists() else [])


def ab_lines(ab: dict[str, Any]) -> list[str]:
    """The medians of scripts/bench/ab.py's rounds, the code before against this code."""
    before, after = ab["medians"]["before"], ab["medians"]["after"]
    how = (
        "both servers loaded at once, 4 connections each, for the same seconds"
        if ab.get("together")
        else "each endpoint measured on one server and then the other (the order alternating)"
    )
    lines = [
        "### The same two, side by side (scripts/bench/ab.py)",
        "",
        f"Both web servers running at once, {how}: {ab['rounds']} rounds of "
        f"{ab['duration_s']:.0f}-s runs, the median round of each. CPU per request is the "
        "steadiest figure on a machine whose speed drifts between runs.",
        "",
        "| endpoint | figure | before | after | change |",
        "|---|---|---|---|---|",
    ]
    figures = (("rps", "unpaced req/s", True), ("web_ms", "web CPU per request (ms)", False),
               ("db_ms", "PostgreSQL CPU per request (ms)", False), ("p50", "paced p50 (ms)",
               False))  # fmt: skip
    for endpoint, old in before.items():
        for key, label, higher in figures:
            if key not in old:  # no paced run when both were loaded at once
                continue
            text, marked = change(old[key], after[endpoint][key], higher)
            lines.append(
                f"| {endpoint} | {label} | {old[key]:,.2f} | {after[endpoint][key]:,.2f} | "
                f"{text}{' (worse)' * marked} |"
            )
    return [*lines, ""]


def markdown(results: dict[str, Any], directory: Path) -> str:
    """BENCHMARKS.md for one run, with the table of the runs recorded in `directory`."""
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['finished_at']} by `make bench` ({results['command']}); every figure"
        " is also in `docs/benchmarks.json`, so runs can be compared.",
        "",
        *_machine_lines(results),
        *_data_lines(results["data"]),
        *_budget_lines(results["budgets"]),
        "",
        *_comparison(directory),
        *METHOD,
        *_http_lines(results.get("http", {})),
    ]
    if streams := results.get("streams"):
        lines += _stream_lines(streams)
    if delib := results.get("deliberations"):
        lines += _deliberation_lines(delib)
    lines += ["", *_history_table(directory), *_plan_lines(results.get("explain", {}))]
    lines += [
        "## What was changed for these numbers",
        "",
        f"Each change to the application and what it measured: [{HISTORY_DOC}]({HISTORY_DOC}).",
        "",
    ]
    text = "\n".join(lines).rstrip() + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


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
    target = directory / "BENCHMARKS.md"
    target.write_text(markdown(results, directory))
    return target


def rewrite(directory: Path = DOCS) -> Path:
    """BENCHMARKS.md written again from the run recorded in benchmarks.json."""
    results = json.loads((directory / "benchmarks.json").read_text())
    target = directory / "BENCHMARKS.md"
    target.write_text(markdown(results, directory))
    return target


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
