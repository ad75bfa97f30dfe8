"""The servers a benchmark run starts: the Procfile's web and worker lines, and the minimal app."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import urllib.request
from pathlib import Path

from ..processes import ManagedProcess
from .config import ARTIFACTS, ROOT, BenchConfig

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes (those still running)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def procfile_line(name: str, root: Path = ROOT) -> str:
    """The command of one Procfile process type (of this checkout, or the one at `root`)."""
    for line in (root / "Procfile").read_text().splitlines():
        match = re.match(rf"^{re.escape(name)}:\s*(.+)$", line)
        if match:
            return match.group(1)
    raise SystemExit(f"bench: Procfile has no '{name}:' line")


class Server(ManagedProcess):
    """A benchmark server: its log in bench-artifacts/<name>.log, its CPU time measurable."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], *, cwd: Path = ROOT
    ) -> None:
        super().__init__(name, argv, env, log_path=ARTIFACTS / f"{name}.log", cwd=cwd)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the leader and its children."""
        return process_cpu_seconds([self.proc.pid, *self.children()])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_web(config: BenchConfig, *, workers: int, name: str = "web") -> tuple[Server, str]:
    """The Procfile's `web:` line, as a host would run it, on a free port."""
    port = free_port()
    env = config.child_env(PORT=str(port), WEB_CONCURRENCY=str(workers))
    server = Server(name, ["sh", "-c", f"exec {procfile_line('web')}"], env)
    base = f"http://127.0.0.1:{port}"
    server.wait_for(lambda: http_ok(f"{base}/api/health"), timeout=60, what="GET /api/health")
    # Every worker process has to be up before anything is measured.
    deadline = time.monotonic() + 30
    while len(server.children()) < workers and time.monotonic() < deadline:
        time.sleep(0.2)
    return server, base


def start_worker(config: BenchConfig, *, concurrency: int) -> Server:
    """The Procfile's `worker:` line."""
    env = config.child_env(WORKER_CONCURRENCY=str(concurrency))
    server = Server("worker", ["sh", "-c", f"exec {procfile_line('worker')}"], env)
    server.wait_for(lambda: " ready." in server.log(), timeout=90, what="celery ready")
    return server


def start_minimal(
    config: BenchConfig, tokens: dict[str, int], *, workers: int
) -> tuple[Server, str]:
    """The minimal WSGI app (raw psycopg2 + redis-py) under gunicorn, keep-alive capable."""
    port = free_port()
    env = config.child_env(BENCH_TOKENS=json.dumps(tokens))
    argv = [
        str(config.bin_dir / "gunicorn"),
        "scripts.bench.minimal_app:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "--keep-alive",
        "30",
    ]
    server = Server("minimal", argv, env)
    base = f"http://127.0.0.1:{port}"
    server.wait_for(lambda: http_ok(f"{base}/health"), timeout=30, what="GET /health")
    return server, base
