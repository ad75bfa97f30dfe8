"""SSE fan-out: 1,000 streams held by one web process while events flow and the list is measured."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg2

from .config import ROOT, BenchConfig
from .http_parts import LIST_PATH, PACED_RATE, load_average, median
from .load import run_wrk
from .seed import WRITER_USER, Seeded
from .servers import Server, process_cpu_seconds, start_web

logger = logging.getLogger(__name__)

STREAM_SESSIONS = 100  # 1,000 streams over 100 sessions: 10 watchers each
EVENT_RATE = 100.0  # events per second in all: each delivered to 10 streams, 1,000 deliveries/s
# The list is measured this many times back to back while the events flow; its figure is the
# median run (one 10-s run moved by a fifth either way from one bench run to the next).
LIST_ROUNDS = 3


def _read_json_line(proc: subprocess.Popen[str], what: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            return dict(json.loads(line))
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
    raise TimeoutError(f"{what} said nothing in {timeout}s")


def _percentiles(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    if not ordered:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}

    def pick(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "count": len(ordered),
        "p50": pick(50),
        "p90": pick(90),
        "p99": pick(99),
        "max": ordered[-1],
    }


def _forget(config: BenchConfig, ids: list[str]) -> None:
    """The fan-out's sessions are scaffolding: remove them so nothing later picks them up."""
    conn = psycopg2.connect(config.database_url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("DELETE FROM session_events WHERE session_id = ANY(%s)", [ids])
            cursor.execute("DELETE FROM sessions WHERE id = ANY(%s)", [ids])
    finally:
        conn.close()


def store_pids() -> dict[str, list[int]]:
    """The machine's PostgreSQL and Redis server processes (every backend and helper)."""
    found: dict[str, list[int]] = {"postgres": [], "redis": []}
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name.startswith("postgres"):
            found["postgres"].append(proc.pid)
        elif name.startswith("redis-server"):
            found["redis"].append(proc.pid)
    return found


def _start_publisher(config: BenchConfig, env: dict[str, str], seconds: float) -> Any:
    """The event writer (a worker's write path), waiting for "go" on its stdin."""
    sessions = min(STREAM_SESSIONS, config.streams)
    command = ["-m", "scripts.bench.publisher", "--user", WRITER_USER, "--sessions", str(sessions),
               "--rate", str(EVENT_RATE), "--seconds", str(seconds)]  # fmt: skip
    return _child(config, env, command)


def _start_client(
    config: BenchConfig, env: dict[str, str], port: int, token: str, ids_file: Path
) -> Any:
    """The 1,000-stream client, holding its streams until "stop" on its stdin."""
    command = ["-m", "scripts.bench.sse_client", "--port", str(port), "--token", token,
               "--ids", str(ids_file), "--streams", str(config.streams)]  # fmt: skip
    return _child(config, env, command)


def _child(config: BenchConfig, env: dict[str, str], arguments: list[str]) -> Any:
    return subprocess.Popen(
        [config.python, *arguments],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _say(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{word}\n")
    proc.stdin.flush()


def _write_ids(ids: list[str]) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(ids, f)
        return Path(f.name)


class CpuWatch:
    """CPU seconds of every process on the machine that shares the 2 cores during a window: the
    list's own server, the stream process, the bench's publisher and client, and the stores."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = {**pids, **store_pids()}
        self.before = {name: process_cpu_seconds(p) for name, p in self.pids.items()}

    def used(self) -> dict[str, float]:
        # A PostgreSQL backend opened during the window (a web thread's first query) is counted
        # whole: it did not exist when the window started.
        for name, pids in store_pids().items():
            self.pids[name] = sorted(set(self.pids[name]) | set(pids))
        return {
            name: round(process_cpu_seconds(pids) - self.before[name], 2)
            for name, pids in self.pids.items()
        }


def _measure_list(
    config: BenchConfig, seeded: Seeded, list_base: str, seconds: float, rounds: int
) -> list[Any]:
    """The list budget, measured `rounds` times back to back while the events flow."""
    return [
        run_wrk(list_base, [LIST_PATH], token=seeded.hot_token, seconds=seconds,
                connections=config.connections, rate=PACED_RATE)
        for _ in range(rounds)
    ]  # fmt: skip


def _fan_out(
    config: BenchConfig, seeded: Seeded, list_base: str, list_web: Server
) -> dict[str, Any]:
    """Run the streams, the publisher and the list; the raw figures of each."""
    # Events flow for the streams alone, then while the list is measured at 500 req/s.
    phase = max(config.duration, 5.0)
    rounds = 1 if config.quick else LIST_ROUNDS
    seconds = (1 + rounds) * phase + 1
    web, base = start_web(config, workers=1, name="web-streams")
    env = config.child_env(DJANGO_SETTINGS_MODULE="bo1site.settings", LOG_LEVEL="WARNING")
    publisher = _start_publisher(config, env, seconds)
    client = None
    ids: list[str] = []
    try:
        ids = _read_json_line(publisher, "publisher", 60)["ids"]
        ids_file = _write_ids(ids)
        port = int(base.rsplit(":", 1)[1])
        client = _start_client(config, env, port, seeded.writer_token, ids_file)
        opened = _read_json_line(client, "sse client", 180)
        logger.info("%s of %d streams open on one web process", opened["connected"], config.streams)
        time.sleep(3)  # the shared Redis reader picks up every stream's key on its next read
        stream_cpu_before = web.cpu_seconds()
        _say(publisher, "go")
        time.sleep(phase)
        watch = CpuWatch(
            {
                "list_web": [list_web.proc.pid, *list_web.children()],
                "streams": [web.proc.pid, *web.children()],
                "publisher": [publisher.pid],
                "client": [client.pid],
            }
        )
        load_before = load_average()
        list_started = time.time()
        list_runs = _measure_list(config, seeded, list_base, phase, rounds)
        list_ended = time.time()
        others_cpu = watch.used()
        published = _read_json_line(publisher, "publisher", seconds + 60)
        stream_cpu = web.cpu_seconds() - stream_cpu_before
        _say(client, "stop")
        received = _read_json_line(client, "sse client", 60)
        ids_file.unlink(missing_ok=True)
    finally:
        for proc in (publisher, client):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        web.stop()
        if ids:
            _forget(config, ids)
    return {
        "ids": ids, "published": published, "received": received, "list_runs": list_runs,
        "list_window": (list_started, list_ended), "others_cpu": others_cpu,
        "stream_cpu": stream_cpu, "load_before": load_before,
    }  # fmt: skip


def _deliveries(
    ids: list[str], published: dict[str, Any], received: dict[str, Any], streams: int
) -> tuple[int, int]:
    """How many streams got every event of their session, and how many deliveries were due."""
    expected = dict(published.pop("per_session"))
    complete = sum(
        1
        for index, last in received.pop("last_sequence_per_stream").items()
        if last == expected[ids[int(index) % len(ids)]]
    )
    return complete, sum(expected[ids[n % len(ids)]] for n in range(streams))


def run_streams(
    config: BenchConfig, seeded: Seeded, list_base: str, list_web: Server
) -> dict[str, Any]:
    """Open the streams on a one-process web server, publish, re-measure the list meanwhile."""
    raw = _fan_out(config, seeded, list_base, list_web)
    ids, published, received = raw["ids"], raw["published"], raw["received"]
    streams_complete, expected_deliveries = _deliveries(ids, published, received, config.streams)
    list_runs, (list_started, list_ended) = raw["list_runs"], raw["list_window"]
    list_paced = median(list_runs, key=lambda run: run.p50)
    samples = received.pop("samples")
    alone = [d for created, d in samples if created < list_started]
    with_list = [d for created, d in samples if list_started <= created <= list_ended]
    stream_cpu = raw["stream_cpu"]
    result = {
        "streams": config.streams,
        "sessions": len(ids),
        "published": published,
        "client": received,
        "expected_deliveries": expected_deliveries,
        "streams_complete": streams_complete,
        "list_during_streams": list_paced.as_dict(),
        "list_during_streams_p50s": [round(run.p50, 2) for run in list_runs],
        "delay_streams_alone_ms": _percentiles(alone),
        "delay_with_list_ms": _percentiles(with_list),
        "stream_process_cpu_s": round(stream_cpu, 2),
        "stream_cpu_ms_per_delivery": round(
            1000 * stream_cpu / max(received["events_received"], 1), 3
        ),
        "load_average": raw["load_before"],
        "cpu_during_list_s": {"seconds": round(list_ended - list_started, 1), **raw["others_cpu"]},
    }
    logger.info(
        "streams: delay p99 %.1f ms alone, %.1f ms with the list; %d/%d deliveries;"
        " list p50 %.2f ms meanwhile",
        result["delay_streams_alone_ms"]["p99"],
        result["delay_with_list_ms"]["p99"],
        received["events_received"],
        expected_deliveries,
        list_paced.p50,
    )
    return result
