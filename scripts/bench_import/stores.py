"""The bench's own databases: a source of the original's shape and an empty target of ours."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = Path(os.environ.get("BO1_FIXTURE_DIR", ROOT.parent / "shared" / "bo1-fixtures"))
# The test suite's Redis slots (bo1site/settings_test.py): the bench borrows a free one.
REDIS_SLOTS = [(14, 15), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]


def server_url() -> str:
    return os.environ.get("BENCH_IMPORT_SERVER_URL", "postgres://postgres@127.0.0.1:5432")


def _connect(dbname: str) -> Any:
    parts = urlparse(server_url())
    conn = psycopg2.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        dbname=dbname,
    )
    conn.autocommit = True
    return conn


class Databases:
    """`bo1_import_bench_source` (loaded from the fixture's pg.sql) and `..._target`."""

    source = "bo1_import_bench_source"
    target = "bo1_import_bench_target"

    @property
    def source_url(self) -> str:
        return f"{server_url()}/{self.source}"

    @property
    def target_url(self) -> str:
        return f"{server_url()}/{self.target}"

    def create(self) -> None:
        self.drop()
        admin = _connect("postgres")
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.source}"')
            cur.execute(f'CREATE DATABASE "{self.target}"')
        admin.close()
        parts = urlparse(server_url())
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                parts.hostname or "127.0.0.1",
                "-p",
                str(parts.port or 5432),
                "-U",
                parts.username or "postgres",
                "-d",
                self.source,
                "-f",
                str(FIXTURE / "pg.sql"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def drop(self) -> None:
        admin = _connect("postgres")
        with admin.cursor() as cur:
            for name in (self.source, self.target):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class ScratchRedis:
    """A free test slot's two Redis databases (its lock held): the source and our cache."""

    def __init__(self) -> None:
        self.handle = None
        for slot in reversed(range(len(REDIS_SLOTS))):
            handle = (Path(tempfile.gettempdir()) / f"bo1-test-slot-{slot}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.handle, (source, target) = handle, REDIS_SLOTS[slot]
            break
        if self.handle is None:
            raise SystemExit("no free Redis database: every test slot is in use")
        base = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        self.source_url = urlunparse(base._replace(path=f"/{source}"))
        self.target_url = urlunparse(base._replace(path=f"/{target}"))
        for url in (self.source_url, self.target_url):
            redis.Redis.from_url(url).flushdb()

    def close(self, flush: bool = True) -> None:
        if flush:
            for url in (self.source_url, self.target_url):
                redis.Redis.from_url(url).flushdb()
        if self.handle is not None:
            self.handle.close()
