"""The HTTP measurements: list, detail (from Redis and after a flush), create, events, and the
same list served by the minimal app, each with wrk over 8 keep-alive connections."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import redis

from .config import BenchConfig
from .load import LoadResult, run_wrk
from .seed import Seeded
from .servers import process_cpu_seconds

logger = logging.getLogger(__name__)

LIST_PATH = "/api/v1/sessions?limit=20"
# The offered load at which each endpoint's latencies are read, spread over the 8 connections: the
# list budget's 500 req/s for the reads; creating sessions and reading whole transcripts are rarer
# and cost more, so they are paced at 100 req/s.
PACED_RATE = 500.0
PACED_RATES = {"create": 100.0, "events": 100.0, "detail_after_flush": 200.0}
# Create is also run at these rates, to show how its latency depends on the load.
CREATE_LOAD_CURVE = (50.0, 200.0, 300.0)
CREATE_BODY = json.dumps(
    {
        "problem_statement": "Should we move our support team to a four-day week next quarter?",
        "problem_context": {"team_size": 14, "budget_usd": 250000},
        "max_rounds": 3,
    }
)


@dataclass
class Measured:
    """One endpoint: unpaced (saturated) throughput, the paced latencies, one-client latency."""

    name: str
    saturated: LoadResult
    paced: LoadResult | None = None
    single: LoadResult | None = None
    # Paced at the same rate with random (Poisson) arrivals, where measured.
    random_arrivals: LoadResult | None = None
    cpu_ms_per_request: float | None = None
    # The web processes' CPU per request in the paced run (caches are colder at a low rate).
    paced_cpu_ms_per_request: float | None = None
    # PostgreSQL's share: the CPU of the server's database connections (they persist).
    db_cpu_ms_per_request: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "saturated": self.saturated.as_dict(),
            "paced": self.paced.as_dict() if self.paced else None,
            "single": self.single.as_dict() if self.single else None,
            "random_arrivals": self.random_arrivals.as_dict() if self.random_arrivals else None,
            "cpu_ms_per_request": self.cpu_ms_per_request,
            "paced_cpu_ms_per_request": self.paced_cpu_ms_per_request,
            "db_cpu_ms_per_request": self.db_cpu_ms_per_request,
            "notes": self.notes,
        }


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


@dataclass
class Target:
    """One endpoint on one server, as wrk will ask for it."""

    name: str
    base: str
    paths: list[str]
    token: str
    server: Any = None
    method: str = "GET"
    body: str = ""

    def run(self, config: BenchConfig, **kwargs: Any) -> LoadResult:
        kwargs.setdefault("connections", config.connections)
        kwargs.setdefault("seconds", config.duration)
        return run_wrk(
            self.base, self.paths, token=self.token, method=self.method, body=self.body, **kwargs
        )


def median(runs: list[Any], key: Any) -> Any:
    """The middle run by `key` (the upper one of an even count)."""
    return sorted(runs, key=key)[len(runs) // 2]


def with_cpu(server: Any, run: Any) -> tuple[Any, float]:
    """`run()`'s result and the CPU seconds the server's processes used meanwhile."""
    before = server.cpu_seconds() if server else 0.0
    result = run()
    return result, (server.cpu_seconds() - before if server else 0.0)


UnpacedRun = tuple[LoadResult, float, float]  # the run, web CPU s, PostgreSQL CPU s


def _unpaced(config: BenchConfig, target: Target, backends: list[int]) -> tuple[UnpacedRun, str]:
    """One unpaced run, its CPU, and how the server's worker processes shared it ("" if one).

    Keep-alive connections stay with the process that accepted them, and the 8 may be split
    unevenly between processes.
    """
    workers = target.server.children() if target.server else []
    worker_before = [process_cpu_seconds([pid]) for pid in workers]
    db_before = process_cpu_seconds(backends)
    run, cpu = with_cpu(target.server, lambda: target.run(config))
    db_cpu = process_cpu_seconds(backends) - db_before
    used = [process_cpu_seconds([pid]) - b for pid, b in zip(workers, worker_before, strict=True)]
    share = ""
    if len(used) > 1 and sum(used) > 0:
        share = "/".join(f"{100 * u / sum(used):.0f}" for u in used)
    return (run, cpu, db_cpu), share


def _paced(config: BenchConfig, target: Target) -> tuple[LoadResult, float]:
    rate = PACED_RATES.get(target.name, PACED_RATE)
    return with_cpu(target.server, lambda: target.run(config, rate=rate))


def _round_notes(
    unpaced: list[UnpacedRun], paced: list[tuple[LoadResult, float]], shares: list[str]
) -> list[str]:
    notes = []
    if shares:
        notes.append(
            "CPU split between the worker processes (%) in the unpaced runs: " + ", ".join(shares)
        )
    if len(unpaced) > 1:
        notes.append(
            f"median of {len(unpaced)} interleaved rounds; unpaced req/s "
            + ", ".join(f"{r[0].rps:.0f}" for r in unpaced)
            + "; paced p50 "
            + ", ".join(f"{r[0].p50:.2f}" for r in paced)
            + " ms"
        )
    return notes


def _error_notes(runs_by_kind: dict[str, list[LoadResult]]) -> list[str]:
    notes = []
    for run_name, runs in runs_by_kind.items():
        errors = sum(r.errors for r in runs)
        if errors:
            notes.append(f"{errors} failed requests (non-2xx or socket errors) {run_name}")
    return notes


def _measured(
    config: BenchConfig,
    target: Target,
    unpaced: list[UnpacedRun],
    paced: list[tuple[LoadResult, float]],
    shares: list[str],
    single: bool,
) -> Measured:
    """The median round's figures of one target, its CPU per request and its notes."""
    saturated, cpu, db_cpu = median(unpaced, key=lambda r: r[0].rps)
    result = Measured(name=target.name, saturated=saturated)
    result.paced, paced_cpu = median(paced, key=lambda r: r[0].p50)
    if target.server and result.paced.requests:
        result.paced_cpu_ms_per_request = round(1000 * paced_cpu / result.paced.requests, 3)
    if target.server and saturated.requests:
        result.cpu_ms_per_request = round(1000 * cpu / saturated.requests, 3)
        result.db_cpu_ms_per_request = round(1000 * db_cpu / saturated.requests, 3)
    result.notes += _round_notes(unpaced, paced, shares)
    if single and not config.quick:
        result.single = target.run(
            config, seconds=min(5.0, config.duration), connections=1, threads=1
        )
    result.notes += _error_notes(
        {
            "unpaced": [r[0] for r in unpaced],
            "paced": [r[0] for r in paced],
            "1 client": [result.single] if result.single else [],
        }
    )
    logger.info(
        "%s: %.0f req/s unpaced; paced p50 %.2f ms at %.0f req/s; load average %.1f",
        target.name,
        saturated.rps,
        result.paced.p50,
        result.paced.rps,
        load_average(),
    )
    return result


def measure_together(
    config: BenchConfig, targets: list[Target], *, rounds: int = 1, single: bool = True
) -> list[Measured]:
    """Warm up, then unpaced and paced runs of every target in turn, `rounds` times.

    Interleaving the targets round by round means a change in the machine's other load hits
    them alike; each figure is the median round (unpaced by requests/s, paced by p50).
    """
    warmup = 1.0 if config.quick else 2.0
    for target in targets:
        target.run(config, seconds=warmup)
    backends = postgres_backends(config)
    unpaced: dict[str, list[UnpacedRun]] = {t.name: [] for t in targets}
    shares: dict[str, list[str]] = {t.name: [] for t in targets}
    paced: dict[str, list[tuple[LoadResult, float]]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            run, share = _unpaced(config, target, backends)
            unpaced[target.name].append(run)
            if share:
                shares[target.name].append(share)
        for target in targets:
            paced[target.name].append(_paced(config, target))
    return [
        _measured(config, t, unpaced[t.name], paced[t.name], shares[t.name], single)
        for t in targets
    ]


def measure(
    config: BenchConfig,
    name: str,
    base: str,
    paths: list[str],
    *,
    token: str,
    server: Any = None,
    method: str = "GET",
    body: str = "",
) -> Measured:
    """One endpoint: warm-up, unpaced (with CPU per request), paced and one-client runs."""
    target = Target(name, base, paths, token, server, method, body)
    return measure_together(config, [target])[0]


def postgres_backends(config: BenchConfig) -> list[int]:
    """The pids of the backends connected to the bench database (our own one excluded)."""
    conn = psycopg2.connect(config.database_url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


def hot_session_ids(config: BenchConfig, seeded: Seeded, *, with_events: bool) -> list[str]:
    """The hot user's visible sessions, newest first (optionally only those with a transcript)."""
    conn = psycopg2.connect(config.database_url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM sessions WHERE user_id = %s AND status <> 'deleted'"
                + (" AND last_sequence >= 20" if with_events else "")
                + " ORDER BY created_at DESC, id DESC",
                [seeded.hot_user_id],
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


def prime(base: str, token: str, paths: list[str]) -> None:
    """GET each path once, so the detail's hot entries are in Redis."""
    for path in paths:
        request = urllib.request.Request(base + path, headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def flush_cache(config: BenchConfig) -> None:
    redis.Redis.from_url(config.redis_url).flushdb()


def run_list_and_minimal(
    config: BenchConfig,
    seeded: Seeded,
    base: str,
    server: Any,
    minimal_base: str | None = None,
    minimal_server: Any = None,
) -> list[Measured]:
    """The list, and the minimal app doing the same job, measured in interleaved rounds."""
    ids = hot_session_ids(config, seeded, with_events=False)
    prime(base, seeded.hot_token, [f"/api/v1/sessions/{i}" for i in ids[:20]])
    targets = [Target("list", base, [LIST_PATH], seeded.hot_token, server)]
    if minimal_base:
        targets.append(
            Target("minimal_list", minimal_base, [LIST_PATH], seeded.hot_token, minimal_server)
        )
    results = measure_together(config, targets, rounds=1 if config.quick else 3)
    results[0].notes.append(
        f"user with {seeded.hot_visible} visible sessions; the page's 20 are hot"
    )
    if len(results) > 1:
        results[1].notes.append(
            "raw psycopg2 + redis-py WSGI app under gunicorn (gthread), same queries"
        )
    return results


def run_detail(config: BenchConfig, seeded: Seeded, base: str, server: Any) -> list[Measured]:
    ids = hot_session_ids(config, seeded, with_events=False)
    warm = [f"/api/v1/sessions/{i}" for i in ids[:1000]]
    prime(base, seeded.hot_token, warm)
    hot = measure(config, "detail_redis", base, warm, token=seeded.hot_token, server=server)
    hot.notes.append("1,000 sessions whose hot entries are in Redis")
    # After a flush every request is a miss: PostgreSQL, then the entry is written back. Each
    # wrk thread walks its own half of the user's sessions, so no id is asked for twice as long
    # as a run makes fewer requests than there are sessions (checked below).
    cold_paths = [f"/api/v1/sessions/{i}" for i in ids]
    flush_cache(config)
    saturated = run_wrk(
        base,
        cold_paths,
        token=seeded.hot_token,
        seconds=min(4.0, config.duration),
        connections=config.connections,
    )
    flush_cache(config)
    paced = run_wrk(
        base,
        cold_paths,
        token=seeded.hot_token,
        seconds=min(4.0, config.duration),
        connections=config.connections,
        rate=PACED_RATES["detail_after_flush"],
    )
    cold = Measured(name="detail_after_flush", saturated=saturated, paced=paced)
    misses = max(saturated.requests, paced.requests)
    cold.notes.append(
        f"Redis flushed before each run; {len(cold_paths)} distinct sessions for "
        f"{misses} requests" + (" (all misses)" if misses <= len(cold_paths) else " (some hits)")
    )
    logger.info("detail after flush: %.0f req/s, paced p50 %.2f ms", saturated.rps, paced.p50)
    return [hot, cold]


def run_create(config: BenchConfig, seeded: Seeded, base: str, server: Any) -> Measured:
    result = measure(
        config,
        "create",
        base,
        ["/api/v1/sessions"],
        token=seeded.writer_token,
        server=server,
        method="POST",
        body=CREATE_BODY,
    )
    result.notes.append("POST /api/v1/sessions by one user over 8 connections")

    def paced_create(rate: float, *, random_arrivals: bool = False) -> LoadResult:
        return run_wrk(
            base,
            ["/api/v1/sessions"],
            token=seeded.writer_token,
            method="POST",
            body=CREATE_BODY,
            seconds=config.duration,
            connections=config.connections,
            rate=rate,
            random_arrivals=random_arrivals,
        )

    # How the latency depends on the offered load: at a low rate each request finds the server's
    # processes (and PostgreSQL's and Redis's) asleep, and waking them takes a share of it.
    # The web processes' CPU per create too: it is higher at a low rate than when busy.
    by_rate = []
    for rate in CREATE_LOAD_CURVE:
        settle()
        run, cpu = with_cpu(server, lambda r=rate: paced_create(r))
        per_create = 1000 * cpu / max(run.requests, 1)
        by_rate.append(f"{run.p50:.2f} ms ({per_create:.2f} ms web CPU) at {rate:.0f} req/s")
    result.notes.append("paced p50 (and web CPU per create) by offered load: " + ", ".join(by_rate))
    # The paced runs spread their requests evenly; clients that know nothing of each other
    # arrive at random instants instead, sometimes together.
    settle()
    rate = PACED_RATES["create"]
    result.random_arrivals = random_run = paced_create(rate, random_arrivals=True)
    result.notes.append(
        f"with random (Poisson) arrivals at {rate:.0f} req/s: p50 {random_run.p50:.2f} ms,"
        f" p95 {random_run.p95:.2f} ms, p99 {random_run.p99:.2f} ms"
    )
    return result


def run_events(config: BenchConfig, seeded: Seeded, base: str, server: Any) -> Measured:
    ids = hot_session_ids(config, seeded, with_events=True)[:1000]
    paths = [f"/api/v1/sessions/{i}/events" for i in ids]
    result = measure(config, "events", base, paths, token=seeded.hot_token, server=server)
    result.notes.append(f"{len(paths)} sessions with a full transcript (30 events each)")
    return result


def settle(seconds: float = 1.0) -> None:
    """A short pause between runs, so one run's tail does not bleed into the next."""
    time.sleep(seconds)
