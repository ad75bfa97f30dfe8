"""Embedded PostgreSQL and Redis (scripts/embedded.py, scripts/stores.py): real servers from the
wheels, on free ports and in a temporary directory, never the machine's own on 5432 and 6379."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis
from django.conf import settings
from psycopg2 import sql

from scripts.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServer,
    live_process,
    wait_gone,
)
from tests.processes import ManagedProcess, database_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
STORES = [sys.executable, str(ROOT / "scripts" / "stores.py")]
# What an outer `stores.py run` or the test settings put in our environment.
STORE_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "TEST_REDIS_URL",
    "TEST_CELERY_BROKER_URL",
    "DJANGO_SETTINGS_MODULE",
    "BO1_STORES",
}

API_SCRIPT = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from bo1site.celery import app

user, _ = get_user_model().objects.get_or_create(username="embedded-check")
token, _ = Token.objects.get_or_create(user=user)
client = APIClient()
client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
created = client.post(
    "/api/v1/sessions",
    {"problem_statement": "Should we open a second office in Lisbon next year?"},
    format="json",
)
listed = client.get("/api/v1/sessions")
app.send_task("celery.accumulate", args=("through the embedded broker",))
print(json.dumps({"status": created.status_code, "id": created.json().get("id"),
                  "total": listed.json().get("total")}))
"""

# Run by `stores.py run`: writes a note to both stores, then waits to be stopped.
WRITER = """
import json, os, pathlib, subprocess, sys, psycopg2, redis
note, ready = sys.argv[1], pathlib.Path(sys.argv[2])
with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS notes (note text)")
    cursor.execute("INSERT INTO notes VALUES (%s)", [note])
redis.Redis.from_url(os.environ["REDIS_URL"]).set(note, "kept")
grandchild = subprocess.Popen(["sleep", "300"])  # in the command's process group, like honcho's
ready.write_text(json.dumps([os.getpid(), grandchild.pid]))
grandchild.wait()
"""

READER = """
import os, sys, psycopg2, redis
note = sys.argv[1]
with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM notes WHERE note = %s", [note])
    print(cursor.fetchone()[0])
print(redis.Redis.from_url(os.environ["REDIS_URL"]).get(note).decode())
"""


def private_dir() -> Path:
    # Not tmp_path (0700 under root's pytest directory): run as root, the embedded PostgreSQL is
    # an unprivileged user, who must be able to enter the directory.
    path = Path(tempfile.mkdtemp(prefix="bo1-embedded-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """One data directory for the module: a cluster is initialised once, as on a laptop."""
    path = private_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir(shared_dir: Path) -> Iterator[Path]:
    yield shared_dir
    for process in processes_in(shared_dir):  # a failed test must not leave servers running
        process.kill()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    env.update(extra)
    return env


def processes_in(directory: Path) -> list[psutil.Process]:
    """Live processes working in a directory: both servers and PostgreSQL's helpers chdir there."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and Path(process.cwd()).is_relative_to(
                directory
            ):
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def server_pids(server: EmbeddedServer) -> list[int]:
    """The server and, for PostgreSQL, its checkpointer, walwriter and other helpers."""
    assert server.pid is not None
    children = psutil.Process(server.pid).children(recursive=True)
    return [server.pid, *(child.pid for child in children)]


def state(directory: Path) -> dict:
    return json.loads(directory.joinpath("state.json").read_text())


def create_database(url: str) -> None:
    admin, name = url.rsplit("/", 1)
    conn = psycopg2.connect(f"{admin}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stores_run(data_dir: Path, code: str, *args: str, embedded: bool = True) -> list[str]:
    """`stores.py run` of a Python snippet, with the embedded stores kept in data_dir."""
    flags = ["--embedded"] if embedded else []
    return [
        *STORES, *flags, "--data-dir", str(data_dir), "run", "--", sys.executable, "-c", code, *args
    ]  # fmt: skip


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_writer(data_dir: Path, note: str) -> tuple[subprocess.Popen[str], list[int]]:
    """`stores.py run` of WRITER; returns it once the note is written, and the command's pids."""
    ready = data_dir / f"ready-{note}"
    process = subprocess.Popen(
        stores_run(data_dir, WRITER, note, str(ready)),
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the writer did not get ready: {process.communicate()}")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())


def test_embedded_stores_run_migrations_api_worker_and_verification_then_stop_leaving_nothing(
    data_dir: Path,
) -> None:
    postgres, cache = EmbeddedPostgres(data_dir / "postgres"), EmbeddedRedis(data_dir / "redis")
    try:
        postgres.start()
        cache.start()
        assert postgres.started and cache.started
        assert postgres.port not in (5432, None) and cache.port not in (6379, None)
        create_database(postgres.url("bo1"))
        env = clean_env(
            DJANGO_SETTINGS_MODULE="bo1site.settings",
            DATABASE_URL=postgres.url("bo1"),
            REDIS_URL=cache.url(0),
            CELERY_BROKER_URL=cache.url(1),
            PYTHONUNBUFFERED="1",
        )

        migrated = manage("migrate", "--noinput", env=env)
        assert migrated.returncode == 0, migrated.stderr

        worker_argv = [
            sys.executable, "-m", "celery", "-A", "bo1site", "worker", "--loglevel", "INFO",
            "--concurrency", "1", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        with ManagedProcess("embedded-worker", worker_argv, env) as worker:
            created = manage("shell", "-c", API_SCRIPT, env=env)
            assert created.returncode == 0, created.stderr
            answer = json.loads(created.stdout.strip().splitlines()[-1])
            assert answer["status"] == 201 and answer["total"] == 1
            worker.wait_for(
                lambda: "succeeded" in worker.log(), timeout=30, what="a task via the broker"
            )

        with psycopg2.connect(postgres.url("bo1")) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT status FROM sessions WHERE id = %s", [answer["id"]])
            assert cursor.fetchone() == ("created",)
        assert redis.Redis.from_url(cache.url(0)).keys(f"*{answer['id']}*")

        verified = manage("verify_session_persistence", env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "All checks passed" in verified.stdout

        pids = server_pids(postgres) + server_pids(cache)
        assert len(pids) > 2  # the postmaster has its helpers
    finally:
        cache.stop()
        postgres.stop()

    assert [pid for pid in pids if live_process(pid)] == []
    assert processes_in(data_dir) == []
    assert state(data_dir / "postgres")["pid"] is None and state(data_dir / "redis")["users"] == []


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stores_run_stops_the_command_group_and_embedded_servers_on_a_signal_keeping_the_data(
    data_dir: Path, stop_signal: signal.Signals
) -> None:
    note = f"note-{uuid.uuid4().hex}"
    first, command_pids = start_writer(data_dir, note)
    try:
        postgres_pid = state(data_dir / "postgres")["pid"]
        pids = [*command_pids, postgres_pid, state(data_dir / "redis")["pid"]]
        pids += [child.pid for child in psutil.Process(postgres_pid).children()]
        first.send_signal(stop_signal)
        _, stderr = first.communicate(timeout=30)
    finally:
        first.kill()
    assert first.returncode == 128 + stop_signal, stderr
    assert [line for line in stderr.splitlines() if line.startswith("stores:")] == [
        stderr.splitlines()[0]
    ]
    assert "PostgreSQL = embedded PostgreSQL" in stderr and "Redis = embedded Redis" in stderr
    assert [pid for pid in pids if live_process(pid)] == []
    assert processes_in(data_dir) == []

    second = run(stores_run(data_dir, READER, note))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["1", "kept"]
    assert processes_in(data_dir) == []


def test_stores_run_passes_configured_urls_through_unchanged_even_when_embedded_is_asked(
    db: None,
) -> None:
    configured = {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL}
    shown = ["DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"]
    show = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {shown!r}}}))"
    empty = private_dir()
    try:
        result = run(stores_run(empty, show, embedded=False), BO1_STORES="embedded", **configured)
        assert result.returncode == 0, result.stderr
        assert list(empty.iterdir()) == []  # nothing embedded was started
    finally:
        shutil.rmtree(empty)
    seen = json.loads(result.stdout)
    assert seen["DATABASE_URL"] == configured["DATABASE_URL"]
    assert seen["REDIS_URL"] == configured["REDIS_URL"]
    # The broker is derived from REDIS_URL: the same server, database 1.
    assert seen["CELERY_BROKER_URL"] == settings.REDIS_URL.rsplit("/", 1)[0] + "/1"
    assert result.stderr.count("stores:") == 1
    assert "PostgreSQL = configured DATABASE_URL" in result.stderr
    assert "Redis = configured REDIS_URL" in result.stderr


def test_next_start_recovers_from_a_kill_9_of_everything_with_stale_pid_files(
    data_dir: Path,
) -> None:
    note = f"note-{uuid.uuid4().hex}"
    first, command_pids = start_writer(data_dir, note)
    try:
        postgres_pid = state(data_dir / "postgres")["pid"]
        everything = [
            psutil.Process(first.pid),
            *(psutil.Process(pid) for pid in command_pids),
            psutil.Process(postgres_pid),
            *psutil.Process(postgres_pid).children(),
            psutil.Process(state(data_dir / "redis")["pid"]),
        ]
        for process in everything:
            process.kill()
        assert wait_gone([process.pid for process in everything], timeout=10) == []
    finally:
        first.kill()
        first.communicate()
    # The cluster is in data_dir, or outside it when root runs from a private checkout
    # (EmbeddedPostgres._runtime_dir): ask where, as stores.py does.
    cluster = EmbeddedPostgres(data_dir / "postgres").data_dir
    postmaster_pid = cluster / "postmaster.pid"
    assert postmaster_pid.exists() and (data_dir / "redis" / "redis.pid").exists()
    assert processes_in(data_dir) == processes_in(cluster.parent) == []
    # Worst case, after a reboot: the stale files name pids that now belong to someone else
    # (PostgreSQL itself would refuse to start over such a postmaster.pid).
    lines = postmaster_pid.read_text().splitlines()
    postmaster_pid.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    redis_state = state(data_dir / "redis")
    redis_state["pid"] = os.getpid()
    (data_dir / "redis" / "state.json").write_text(json.dumps(redis_state))

    second = run(stores_run(data_dir, READER, note))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["1", "kept"]
    assert processes_in(data_dir) == processes_in(cluster.parent) == []


def test_servers_started_by_env_stay_up_through_runs_until_stores_stop(data_dir: Path) -> None:
    exported = run([*STORES, "--embedded", "--data-dir", str(data_dir), "env"])
    assert exported.returncode == 0, exported.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in exported.stdout.splitlines())
    pids = [state(data_dir / "postgres")["pid"], state(data_dir / "redis")["pid"]]
    try:
        assert env["CELERY_BROKER_URL"] == env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
        joined = run(stores_run(data_dir, "print('ran')"))
        assert joined.returncode == 0, joined.stderr
        assert joined.stderr.count("already running") == 2
        assert [pid for pid in pids if live_process(pid)] == pids  # pinned: still up
        with psycopg2.connect(env["DATABASE_URL"]):
            pass
    finally:
        stopped = run([*STORES, "--data-dir", str(data_dir), "stop"])
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone(pids, timeout=5) == []
    assert processes_in(data_dir) == []


def test_root_in_a_directory_only_root_may_enter_runs_postgres_keeps_data_and_cleans_up() -> None:
    """A clone under /root or in `mktemp -d` (0700): no chmod, no variable, it just works."""
    private = Path(tempfile.mkdtemp(prefix="bo1-private-"))  # mode 0700, as mktemp -d makes it
    assert private.stat().st_mode & 0o777 == 0o700
    data_dir = private / ".data"
    note = f"note-{uuid.uuid4().hex}"
    try:
        data_dir.mkdir()
        first, _ = start_writer(data_dir, note)
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=30)
        assert first.returncode == 128 + signal.SIGINT, stderr
        second = run(stores_run(data_dir, READER, note))
        assert second.returncode == 0, second.stderr
        assert second.stdout.splitlines() == ["1", "kept"]  # the data survived the stop

        recorded = data_dir / "postgres" / "runtime-dir"
        if os.geteuid() != 0:  # the server runs as ourselves: nothing moves
            assert not recorded.exists()
            return
        runtime = Path(recorded.read_text().strip())
        assert runtime.parent == Path("/var/lib/bo1site-embedded")
        assert f"data in {runtime}" in second.stderr
        for directory in (runtime, *runtime.parents):  # root's, and writable by nobody else
            st = directory.stat()
            assert st.st_uid == 0 and not st.st_mode & 0o022, directory
        cluster = (runtime / "data").stat()
        assert cluster.st_uid != 0 and cluster.st_mode & 0o777 == 0o700
        assert private.stat().st_mode & 0o777 == 0o700  # the private tree was not opened up

        cleaned = run([*STORES, "--data-dir", str(data_dir), "clean"])
        assert cleaned.returncode == 0, cleaned.stderr
        assert not runtime.exists() and not data_dir.exists()
        assert processes_in(private) == [] and processes_in(runtime.parent) == []
    finally:
        subprocess.run([*STORES, "--data-dir", str(data_dir), "clean"], capture_output=True)
        shutil.rmtree(private, ignore_errors=True)
