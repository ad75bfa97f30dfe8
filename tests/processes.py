"""Real processes for end-to-end tests: a Celery worker and the production web server.

They run against the test database (the tests that use them need `transactional_db`, so what
they write is committed and visible across processes) and the test Redis databases.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database the test process is using right now (the test database)."""
    s = connection.settings_dict
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"


def stack_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that shares this test's stores."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bo1site.settings_test",
        "DATABASE_URL": database_url(),
        "TEST_REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "TEST_CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class ManagedProcess:
    """A child process with its output in a log file, stopped for sure at the end."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.name = name
        self.log_path = ARTIFACTS / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we can signal all its children
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-4000:]}")
            if ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready ({what}) in {timeout}s:\n{self.log()[-4000:]}")

    def kill_hard(self) -> None:
        """SIGKILL the whole process group: a crash, no cleanup, no acknowledgement."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill_hard()
        self._log.close()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_worker(name: str = "worker", concurrency: int = 1, **env: str) -> ManagedProcess:
    """A real `celery -A bo1site worker`, ready once it reports so."""
    argv = [
        sys.executable, "-m", "celery", "-A", "bo1site", "worker",
        "--loglevel", "INFO", "--concurrency", str(concurrency), "--pool", "prefork",
        "--without-gossip", "--without-mingle", "-n", f"{name}-{time.monotonic_ns()}@%h",
    ]  # fmt: skip
    process = ManagedProcess(name, argv, stack_env(**env))
    process.wait_for(lambda: " ready." in process.log(), timeout=60, what="celery ready")
    return process


def start_web(
    port: int | None = None, *, workers: int = 1, **env: str
) -> tuple[ManagedProcess, str]:
    """The Procfile's production server line (gunicorn + our uvicorn worker) on a free port."""
    port = port or free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "bo1site.asgi:application",
        "--worker-class", "bo1site.server.FairUvicornWorker", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--graceful-timeout", "5",
    ]  # fmt: skip
    process = ManagedProcess("web", argv, stack_env(**env))

    def answering() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    process.wait_for(answering, timeout=30, what=f"port {port}")
    return process, f"http://127.0.0.1:{port}"
