"""Where the benchmark's stores live and how big its data set is.

The benchmark never touches the dev database (`bo1`) or the test database: it works in a
database of its own (`bo1_bench` beside the configured one) and on Redis databases of its own.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "bench-artifacts"
BENCH_DATABASE = "bo1_bench"
# Redis database numbers of the benchmark's own (dev uses 0/1, the tests 14/15).
BENCH_REDIS_DB = 10
BENCH_BROKER_DB = 11
FORBIDDEN_DATABASES = frozenset({"bo1", "test_bo1", "postgres", "template0", "template1"})


def _with_path(url: str, path: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=path))


def bench_database_url(*, quick: bool = False) -> str:
    """BENCH_DATABASE_URL, else the configured DATABASE_URL with its name set to bo1_bench.

    A --quick run has a small database of its own (bo1_bench_quick), so it never replaces the
    full seed.
    """
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        url = explicit + ("_quick" if quick else "")
    else:
        base = os.environ.get("DATABASE_URL", "postgres://127.0.0.1:5432/bo1")
        url = _with_path(base, f"/{BENCH_DATABASE}{'_quick' if quick else ''}")
    name = urlparse(url).path.lstrip("/")
    if name in FORBIDDEN_DATABASES or name.startswith("test_"):
        raise SystemExit(f"bench: refusing to use database {name!r}; it is not the bench's own")
    return url


def bench_redis_url(number: int) -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlparse(base)
    if parts.scheme == "unix":
        return urlunparse(parts._replace(query=f"db={number}"))
    return urlunparse(parts._replace(path=f"/{number}"))


@dataclass
class BenchConfig:
    sessions: int = 1_000_000
    users: int = 1_000
    hot_user_sessions: int = 10_000
    quick: bool = False
    skip_seed: bool = False
    only: set[str] = field(default_factory=set)
    duration: float = 10.0
    connections: int = 8
    streams: int = 1_000
    deliberations: int = 100
    workers: int = 2
    deliberation_timeout: float = 600.0
    database_url: str = field(default_factory=bench_database_url)
    redis_url: str = field(default_factory=lambda: bench_redis_url(BENCH_REDIS_DB))
    broker_url: str = field(default_factory=lambda: bench_redis_url(BENCH_BROKER_DB))
    python: str = sys.executable

    def wants(self, part: str) -> bool:
        return not self.only or part in self.only

    @property
    def bin_dir(self) -> Path:
        return Path(self.python).parent

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment of every server the benchmark starts: production-like settings."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bo1site.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.broker_url,
            "DJANGO_DEBUG": "0",
            "BO1_LLM_PROVIDER": "offline",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # The per-user limits stay on (their Redis counter is part of a request's cost) but
            # high enough that one benchmark user creating and starting sessions never meets them.
            "BO1_THROTTLE_CREATE": "100000000/min",
            "BO1_THROTTLE_START": "100000000/min",
            # The worker's daily retention job would delete the seed's soft-deleted sessions
            # (5% of them, up to a year old) the first time a worker starts, in the middle of
            # the run; the history part purges sessions of its own with its own setting.
            "BO1_DELETED_RETENTION_DAYS": "36500",
            "BO1_RETENTION_DAYS": "",
        }
        env.update(extra)
        return env
