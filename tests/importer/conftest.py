"""The original service's stores for the import tests: the bo1 fixture, loaded by its own loader
into a scratch PostgreSQL database and a scratch Redis database that these fixtures create and drop.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg2
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from bo1site.settings_test import REDIS_SLOTS

ROOT = Path(settings.BASE_DIR)
FIXTURE = Path(
    os.environ.get("BO1_FIXTURE_DIR", Path(settings.BASE_DIR).parent / "shared" / "bo1-fixtures")
)


def expected() -> dict[str, Any]:
    return json.loads((FIXTURE / "expected.json").read_text())


def _server_url(dbname: str) -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{dbname}"


def _admin_connection() -> Any:
    s = connection.settings_dict
    conn = psycopg2.connect(
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
        user=s.get("USER") or "postgres",
        password=s.get("PASSWORD") or None,
        dbname="postgres",
    )
    conn.autocommit = True
    return conn


class ScratchRedis:
    """A Redis database number no test run uses meanwhile: the cache database of a test slot
    whose lock this process holds (bo1site/settings_test.py takes slots the same way)."""

    def __init__(self) -> None:
        self.handle = None
        for slot in reversed(range(len(REDIS_SLOTS))):
            handle = (Path(tempfile.gettempdir()) / f"bo1-test-slot-{slot}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.handle, self.number = handle, REDIS_SLOTS[slot][0]
            break
        if self.handle is None:
            raise RuntimeError("no free Redis database for the import source")
        parts = urlparse(settings.CACHES["default"]["LOCATION"])
        self.url = urlunparse(parts._replace(path=f"/{self.number}"))
        self.client = redis.Redis.from_url(self.url, decode_responses=True)
        self.client.flushdb()

    def close(self) -> None:
        self.client.flushdb()
        self.client.close()
        assert self.handle is not None
        self.handle.close()


class Source:
    """The original service's two stores, loaded from the fixture."""

    def __init__(self, database_url: str, redis_url: str, redis_client: redis.Redis) -> None:
        self.database_url, self.redis_url, self.redis = database_url, redis_url, redis_client

    def pg(self) -> Any:
        parts = urlparse(self.database_url)
        return psycopg2.connect(
            host=parts.hostname, port=parts.port, user=parts.username, dbname=parts.path[1:]
        )

    def snapshot(self) -> tuple[Any, ...]:
        """Everything both stores hold, to prove an import wrote nothing there."""
        keys = sorted(self.redis.scan_iter(count=1000))
        dump = [(k, self.redis.type(k), self.redis.dump(k)) for k in keys]
        with self.pg() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM sessions t),"
                " (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM session_events t),"
                " (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM recommendations t),"
                " (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM users t)"
            )
            tables = cur.fetchone()
        conn.close()
        return tuple(dump), tables


def _load(database_url: str | None, redis_url: str | None, broken: bool) -> None:
    argv = [sys.executable, str(FIXTURE / "load.py")]
    if database_url:
        argv += ["--database-url", database_url]
    if redis_url:
        argv += ["--redis-url", redis_url]
    if broken:
        argv.append("--with-broken")
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def loaded_template(django_db_blocker) -> Iterator[str]:
    """The fixture's PostgreSQL dump loaded once by load.py (23 s), cloned for each test."""
    name = f"bo1_source_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        admin = _admin_connection()
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            _load(_server_url(name), None, broken=False)
            yield name
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


@pytest.fixture
def scratch_stores(transactional_db, loaded_template) -> Iterator[tuple[str, ScratchRedis]]:
    """A PostgreSQL database with the fixture loaded and an empty Redis database, both dropped
    afterwards."""
    name = f"bo1_source_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_connection()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{loaded_template}"')
    scratch = ScratchRedis()
    try:
        yield _server_url(name), scratch
    finally:
        scratch.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _source(scratch_stores: tuple[str, ScratchRedis], *, broken: bool) -> Source:
    database_url, scratch = scratch_stores
    _load(None, scratch.url, broken)
    return Source(database_url, scratch.url, scratch.client)


@pytest.fixture
def source(scratch_stores) -> Source:
    """The fixture as the original service left it."""
    return _source(scratch_stores, broken=False)


@pytest.fixture
def broken_source(scratch_stores) -> Source:
    """The fixture with its deliberately broken records."""
    return _source(scratch_stores, broken=True)


def run_import(*args: str) -> tuple[int, str]:
    """Run the command in-process; returns (exit code, stdout)."""
    from io import StringIO

    out = StringIO()
    code = 0
    try:
        call_command("import_bo1", *args, stdout=out, stderr=StringIO())
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue()


def import_json(source: Source, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out = run_import(
        "--database-url", source.database_url, "--redis-url", source.redis_url, "--json", *extra
    )
    return code, json.loads(out)
