"""Real processes for end-to-end tests: a Celery worker and the production web server.

They run against the test database (the tests that use them need `transactional_db`, so what
they write is committed and visible across processes) and the test Redis databases.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from scripts.processes import ManagedProcess as BaseProcess

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


class ManagedProcess(BaseProcess):
    """A test's child process, its log in test-artifacts/ under a name no other run uses."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = ARTIFACTS / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        super().__init__(name, argv, env, log_path=log_path, cwd=ROOT)


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
        "--worker-class", "bo1site.serving.worker.FairUvicornWorker", "--bind", f"127.0.0.1:{port}",
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
