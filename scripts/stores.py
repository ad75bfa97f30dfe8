#!/usr/bin/env python
"""Find the PostgreSQL and Redis to use, start them if needed, and run a command against them.

    python scripts/stores.py run -- pytest      # what `make test` and `make run` do
    python scripts/stores.py env                # print the export lines only

Configured stores (DATABASE_URL, REDIS_URL) always win; then a server answering on the default
port; then a locally installed server that is stopped, which is started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

DEFAULT_DATABASE_URL = "postgres://127.0.0.1:5432/bo1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/1"


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.2)
    return False


def start_local_postgres() -> bool:
    """Start the machine's PostgreSQL cluster when it is installed but stopped."""
    if not (shutil.which("pg_ctlcluster") and os.path.isdir("/etc/postgresql")):
        return False
    for version in sorted(os.listdir("/etc/postgresql")):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
        )
    return wait_for_port("127.0.0.1", 5432)


def start_local_redis() -> bool:
    """Start the machine's Redis server when it is installed but stopped."""
    if not shutil.which("redis-server"):
        return False
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(
        [
            "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
            "--port", "6379", "--save", "", "--appendonly", "no",
            "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
        ],
        check=False,
        capture_output=True,
    )  # fmt: skip
    return wait_for_port("127.0.0.1", 6379)


def ensure_database(url: str) -> None:
    """Create the configured database when it is missing."""
    import psycopg2
    from psycopg2 import sql

    parsed = urlparse(url)
    name = parsed.path.lstrip("/") or "bo1"
    admin_dsn = parsed._replace(path="/postgres").geturl()
    for attempt in range(20):
        try:
            conn = psycopg2.connect(admin_dsn, connect_timeout=3)
            break
        except psycopg2.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            say(f"stores: created database {name}")
    conn.close()


def resolve() -> dict[str, str]:
    """Decide the stores and make sure they answer; returns the environment to run with."""
    env: dict[str, str] = {}
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        where_db = "configured DATABASE_URL"
    else:
        database_url = DEFAULT_DATABASE_URL
        if port_open("127.0.0.1", 5432):
            where_db = "local PostgreSQL on 127.0.0.1:5432"
        elif start_local_postgres():
            where_db = "local PostgreSQL on 127.0.0.1:5432 (started)"
        else:
            raise SystemExit("stores: no PostgreSQL configured, running or installed")
    env["DATABASE_URL"] = database_url

    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        where_redis = "configured REDIS_URL"
    else:
        redis_url = DEFAULT_REDIS_URL
        if port_open("127.0.0.1", 6379):
            where_redis = "local Redis on 127.0.0.1:6379"
        elif start_local_redis():
            where_redis = "local Redis on 127.0.0.1:6379 (started)"
        else:
            raise SystemExit("stores: no Redis configured, running or installed")
    env["REDIS_URL"] = redis_url
    env["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
    ensure_database(database_url)
    say(f"stores: PostgreSQL = {where_db}; Redis = {where_redis}")
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("env", help="print export lines for the stores to use")
    run = sub.add_parser("run", help="run a command with the stores' environment")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    env = resolve()
    if args.action == "env":
        for key, value in env.items():
            print(f"export {key}={value}")
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    child = subprocess.Popen(command, env={**os.environ, **env})
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.wait()
        return 130


if __name__ == "__main__":
    sys.exit(main())
