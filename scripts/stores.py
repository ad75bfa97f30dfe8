#!/usr/bin/env python
"""Find the PostgreSQL and Redis to use, start them if needed, and run a command against them.

    python scripts/stores.py run -- pytest      # what `make test` and `make run` do
    python scripts/stores.py env                # print the export lines only
    python scripts/stores.py stop               # stop embedded servers that `env` left running
    python scripts/stores.py clean              # stop them and remove their data (`make clean`)

For each store the first that applies wins: a configured URL (DATABASE_URL, REDIS_URL); a server
answering on the default port; a locally installed server that is stopped, which is started; an
embedded server from a wheel, with its data under .data/ (docs/EMBEDDED.md). BO1_STORES=embedded
(or --embedded) skips the local steps; BO1_STORES=local never embeds.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse, urlunparse

import psutil

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as `python scripts/stores.py`: find the scripts package
    sys.path.insert(0, str(ROOT))

from scripts import embedded  # noqa: E402  (nothing here imports Django or bo1site)

DEFAULT_DATABASE_URL = "postgres://127.0.0.1:5432/bo1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MODES = ("auto", "embedded", "local")


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


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
    started = False
    for version in sorted(os.listdir("/etc/postgresql")):
        result = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
        )
        started = started or result.returncode == 0
    return started and wait_for_port("127.0.0.1", 5432)


def start_local_redis() -> bool:
    """Start the machine's Redis server when it is installed but stopped."""
    if not shutil.which("redis-server"):
        return False
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    result = subprocess.run(
        [
            "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
            "--port", "6379", "--save", "", "--appendonly", "no",
            "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
        ],
        check=False,
        capture_output=True,
    )  # fmt: skip
    return result.returncode == 0 and wait_for_port("127.0.0.1", 6379)


def ensure_database(url: str) -> bool:
    """Create the configured database when it is missing; returns whether it was created."""
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
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is not None:
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        conn.close()


def redis_database(url: str, number: int) -> str:
    """The same Redis server, another database number."""
    parts = urlparse(url)
    if parts.scheme == "unix":  # unix sockets carry the db as a query parameter
        return urlunparse(parts._replace(query=f"db={number}"))
    return urlunparse(parts._replace(path=f"/{number}"))


def configured(variable: str, url: str) -> str:
    """Where a configured URL points, without its credentials."""
    parts = urlparse(url)
    host = parts.hostname or "unix socket"
    port = f":{parts.port}" if parts.port else ""
    return f"configured {variable} ({host}{port}{parts.path})"


def embedded_where(server: Any) -> str:
    name = f"embedded {server.kind} {getattr(server, 'version', '')}".rstrip()
    how = f"started in {server.start_seconds:.1f} s" if server.started else "already running"
    return f"{name} on {embedded.HOST}:{server.port}, data in {shown(server.work_dir)} ({how})"


def resolve(mode: str, data_dir: Path, servers: list[Any], *, register: bool) -> dict[str, str]:
    """Decide the stores and make sure they answer; returns the environment to run with.
    Embedded servers it starts or joins are appended to `servers` as soon as they run."""
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        where_db = configured("DATABASE_URL", database_url)
    elif mode != "embedded" and port_open("127.0.0.1", 5432):
        database_url, where_db = DEFAULT_DATABASE_URL, "local PostgreSQL on 127.0.0.1:5432"
    elif mode != "embedded" and start_local_postgres():
        database_url = DEFAULT_DATABASE_URL
        where_db = "local PostgreSQL on 127.0.0.1:5432 (started)"
    elif mode == "local":
        raise SystemExit("stores: no PostgreSQL configured, running or installed")
    else:
        postgres = embedded.EmbeddedPostgres(data_dir / "postgres")
        servers.append(postgres)
        postgres.start(register=register)
        database_url, where_db = postgres.url("bo1"), embedded_where(postgres)

    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        where_redis = configured("REDIS_URL", redis_url)
    elif mode != "embedded" and port_open("127.0.0.1", 6379):
        redis_url, where_redis = DEFAULT_REDIS_URL, "local Redis on 127.0.0.1:6379"
    elif mode != "embedded" and start_local_redis():
        redis_url, where_redis = DEFAULT_REDIS_URL, "local Redis on 127.0.0.1:6379 (started)"
    elif mode == "local":
        raise SystemExit("stores: no Redis configured, running or installed")
    else:
        redis = embedded.EmbeddedRedis(data_dir / "redis")
        servers.append(redis)
        redis.start(register=register)
        redis_url, where_redis = redis.url(0), embedded_where(redis)

    if ensure_database(database_url):
        where_db += f", database {urlparse(database_url).path.lstrip('/')} created"
    say(f"stores: PostgreSQL = {where_db}; Redis = {where_redis}")
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or redis_database(redis_url, 1),
    }


def owns_terminal() -> bool:
    """Whether we run in the foreground of a terminal (Ctrl-C reaches our whole process group)."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def run(command: list[str], env: dict[str, str]) -> int:
    """Run the command to its end, passing on the signals meant for it; returns its status.

    In the foreground of a terminal the command shares our process group, so it reads the
    terminal and gets Ctrl-C and Ctrl-Z from it as if started directly; a SIGTERM or SIGHUP sent
    to us alone is passed on. Otherwise it gets a process group of its own, SIGINT, SIGTERM and
    SIGHUP go to that whole group, and whatever the command leaves in it is stopped at the end.
    """
    interactive = owns_terminal()
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            if interactive:
                os.kill(child.pid, signum)
            else:
                os.killpg(child.pid, signum)

    def terminal_sent_it_too(_signum: int, _frame: FrameType | None) -> None:
        """The terminal delivers Ctrl-C to the command itself; we only outlive it to clean up."""

    signal.signal(signal.SIGINT, terminal_sent_it_too if interactive else forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    try:
        child = subprocess.Popen(command, env=env, process_group=None if interactive else 0)
    except OSError as error:
        say(f"stores: cannot run {command[0]}: {error.strerror}")
        return 127
    for signum in pending:
        forward(signum, None)
    returncode = child.wait()
    if not interactive:
        stop_process_group(child.pid)
    return 128 - returncode if returncode < 0 else returncode


def stop_process_group(pgid: int, timeout: float = 5.0) -> None:
    """Stop the processes the command left behind in its process group."""

    def members() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        return found

    left = members()
    if not left:
        return
    logging.getLogger("stores").warning(
        "stopping %d process(es) the command left behind: %s",
        len(left),
        ", ".join(f"{p.pid} {p.name()}" for p in left),
    )
    pids = [process.pid for process in left]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        pids = embedded.wait_gone(pids, timeout)
        if not pids:
            return


def stop_embedded(data_dir: Path, *, force: bool) -> int:
    """`stores.py stop`: stop the embedded servers of a data directory."""
    status = 0
    kinds = {"postgres": embedded.EmbeddedPostgres, "redis": embedded.EmbeddedRedis}
    for name, server_class in kinds.items():
        if not (data_dir / name).is_dir():
            continue
        server = server_class(data_dir / name)
        if server.stop(unpin=True, force=force):
            say(f"stores: embedded {server.kind} in {shown(server.root)} is stopped")
        else:
            say(f"stores: embedded {server.kind} is still used by a running command (--force)")
            status = 1
    return status


def clean_embedded(data_dir: Path) -> int:
    """`stores.py clean`: stop the embedded servers and remove all of their data, including a
    cluster kept outside the data directory (docs/EMBEDDED.md, running as root)."""
    status = stop_embedded(data_dir, force=True)
    if (data_dir / "postgres").is_dir():
        embedded.EmbeddedPostgres(data_dir / "postgres").remove_runtime()
    shutil.rmtree(data_dir, ignore_errors=True)
    say(f"stores: removed {shown(data_dir)}")
    return status


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--embedded", action="store_true", help="use embedded servers unless a URL is configured"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("BO1_DATA_DIR") or ROOT / ".data"),
        help="where the embedded servers keep their data (default: .data, or $BO1_DATA_DIR)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is done")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("env", help="print export lines for the stores to use")
    run_parser = sub.add_parser("run", help="run a command with the stores' environment")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    stop_parser = sub.add_parser("stop", help="stop the embedded servers of the data directory")
    stop_parser.add_argument(
        "--force", action="store_true", help="even when running commands still use them"
    )
    sub.add_parser("clean", help="stop the embedded servers and remove all of their data")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="stores: %(message)s"
    )
    mode = "embedded" if args.embedded else (os.environ.get("BO1_STORES") or "auto")
    if mode not in MODES:
        parser.error(f"BO1_STORES must be one of {', '.join(MODES)}, not {mode!r}")
    data_dir = args.data_dir.resolve()
    if args.action == "stop":
        return stop_embedded(data_dir, force=args.force)
    if args.action == "clean":
        return clean_embedded(data_dir)
    command = getattr(args, "command", [])
    if command[:1] == ["--"]:
        command = command[1:]
    if args.action == "run" and not command:
        parser.error("run needs a command after --")

    # Until the command runs, a SIGTERM unwinds like Ctrl-C so that what started is stopped.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    servers: list[Any] = []
    keep_servers = False
    try:
        env = resolve(mode, data_dir, servers, register=args.action == "run")
        if args.action == "env":
            for key, value in env.items():
                print(f"export {key}={value}")
            keep_servers = True
            return 0
        return run(command, {**os.environ, **env})
    except embedded.EmbeddedStoreError as error:
        say(f"stores: {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if not keep_servers:
            for server in reversed(servers):
                try:
                    server.stop()
                except embedded.EmbeddedStoreError as error:
                    say(f"stores: {error}")


if __name__ == "__main__":
    sys.exit(main())
