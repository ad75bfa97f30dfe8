#!/usr/bin/env python3
"""The product as a user gets it: a fresh clone in a private directory, `make run` as the README
says (its own venv, requirements/base.txt only), a deliberation to `completed`, then Ctrl-C.

    python3 .ci/smoke.py [REPO]        # REPO: what to clone (default: this checkout)

It runs `make run` three times in one clone made in a `mktemp -d` directory (mode 0700):
1. with the machine's PostgreSQL and Redis: /api/health is 200; a session created with the
   token `make run` printed is started and reaches `completed`;
2. with BO1_STORES=embedded, in a network namespace holding only its loopback (when this
   machine can make one: root with iproute2): the same, on the embedded stores;
3. the embedded stores again: the session of run 2 is still listed.
After each, SIGINT to `make run`'s process group (what Ctrl-C does) must leave no process of the
clone behind. Last, a run whose worker cannot start must name it and exit non-zero.
Only the standard library is used here: what is installed is what `make run` installs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PROBLEM = "Should we move our support team to a follow-the-sun rotation next quarter?"
FIRST_START_SECONDS = 420  # the first run creates the venv and installs base.txt
START_SECONDS = 120
DELIBERATION_SECONDS = 120


def say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def fail(message: str, log: Path | None = None) -> None:
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        print(f"--- last lines of {log.name} ---\n{tail}\n---", flush=True)
    raise SystemExit(f"smoke: FAILED: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http://127.0.0.1 only)
    if token:
        request.add_header("Authorization", f"Token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:500]
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def processes_of(clone: Path, extra: list[Path]) -> list[str]:
    """Live processes that run from, work in, or name the clone (or its cluster's directory)."""
    places = [str(clone), *(str(p) for p in extra)]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = [cmdline]
            for link in ("cwd", "exe"):
                with contextlib.suppress(OSError):
                    where.append(os.readlink(entry / link))
        except OSError:
            continue
        if any(place in text for place in places for text in where):
            found.append(f"{entry.name}: {cmdline.strip()[:160]}")
    return found


class MakeRun:
    """`make run` in the clone, in a session of its own, its output in a log file."""

    def __init__(self, clone: Path, name: str, env: dict[str, str]) -> None:
        self.clone, self.name = clone, name
        self.port = free_port()
        self.log = clone.parent / f"make-run-{name}.log"
        self.base = f"http://127.0.0.1:{self.port}"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["make", "run", f"PORT={self.port}"],
                cwd=clone,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.began = time.monotonic()

    def wait_until_serving(self, seconds: float) -> str:
        """The token `make run` printed, once /api/health answers 200."""
        deadline = time.monotonic() + seconds
        token = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"{self.name}: make run exited {self.proc.returncode} early", self.log)
            if token is None:
                found = re.search(r"API token: (\w+)", self.log.read_text(errors="replace"))
                token = found.group(1) if found else None
            if token and call("GET", f"{self.base}/api/health")[0] == 200:
                say(f"{self.name}: serving in {time.monotonic() - self.began:.0f} s")
                return token
            time.sleep(0.5)
        fail(f"{self.name}: not serving within {seconds:.0f} s", self.log)
        raise AssertionError  # unreachable

    def interrupt(self, extra_places: list[Path]) -> None:
        """Ctrl-C: SIGINT to the foreground process group; then nothing of the clone may run."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            fail(f"{self.name}: make run did not stop within 60 s of SIGINT", self.log)
        deadline = time.monotonic() + 10
        while (left := processes_of(self.clone, extra_places)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if left:
            fail(f"{self.name}: processes left after Ctrl-C:\n  " + "\n  ".join(left), self.log)
        say(f"{self.name}: stopped by SIGINT (exit {self.proc.returncode}), nothing left behind")


def deliberate(run: MakeRun, token: str) -> str:
    """Create a session with the printed token, start it, and wait for `completed`."""
    api = f"{run.base}/api/v1/sessions"
    status, created = call("POST", api, token, {"problem_statement": PROBLEM, "max_rounds": 2})
    if status != 201:
        fail(f"{run.name}: create answered {status}: {created!r}", run.log)
    session_id = created["id"]
    status, answer = call("POST", f"{api}/{session_id}/start", token)
    if status != 202:
        fail(f"{run.name}: start answered {status}: {answer!r}", run.log)
    deadline = time.monotonic() + DELIBERATION_SECONDS
    while time.monotonic() < deadline:
        status, detail = call("GET", f"{api}/{session_id}", token)
        if status == 200 and detail["status"] in ("completed", "failed", "killed"):
            if detail["status"] != "completed":
                fail(f"{run.name}: the session ended {detail['status']}: {detail}", run.log)
            rounds = detail["round_number"]
            say(f"{run.name}: {session_id} completed ({detail['phase']}, {rounds} rounds)")
            return session_id
        time.sleep(0.5)
    fail(f"{run.name}: {session_id} did not complete within {DELIBERATION_SECONDS} s", run.log)
    raise AssertionError  # unreachable


def cluster_places(clone: Path) -> list[Path]:
    """Where a root-run embedded PostgreSQL keeps its cluster, outside the clone."""
    recorded = clone / ".data" / "postgres" / "runtime-dir"
    return [Path(recorded.read_text().strip())] if recorded.exists() else []


def embedded_runs(clone: Path) -> None:
    """Runs 2 and 3, on the embedded stores (inside the network namespace when there is one)."""
    env = {"BO1_STORES": "embedded"}
    first = MakeRun(clone, "embedded", env)
    token = first.wait_until_serving(START_SECONDS)
    session_id = deliberate(first, token)
    first.interrupt(cluster_places(clone))

    again = MakeRun(clone, "embedded-again", env)
    token = again.wait_until_serving(START_SECONDS)
    status, listed = call("GET", f"{again.base}/api/v1/sessions", token)
    ids = [s["id"] for s in listed["sessions"]] if status == 200 else []
    if session_id not in ids:
        fail(f"embedded-again: {session_id} is not listed after a restart: {listed!r}", again.log)
    say(f"embedded-again: {session_id} still listed after the restart")
    again.interrupt(cluster_places(clone))


def in_empty_network_namespace(clone: Path) -> bool:
    """Runs 2 and 3 in a network namespace with only its loopback; False when none can be made."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = f"bo1-smoke-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        return False
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        say(f"embedded runs in network namespace {name} (loopback only)")
        result = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, __file__, "--embedded-in", str(clone)]
        )
        if result.returncode != 0:
            raise SystemExit(result.returncode)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True


def dead_worker_is_named(clone: Path) -> None:
    """A process that dies at start: `make run` says which, and why, and exits non-zero."""
    run = MakeRun(clone, "dead-worker", {"CELERY_BROKER_URL": "nosuchtransport://127.0.0.1/1"})
    try:
        run.proc.wait(timeout=START_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        fail("dead-worker: make run kept running with a worker that cannot start", run.log)
    last = "\n".join(run.log.read_text(errors="replace").splitlines()[-40:])
    if run.proc.returncode == 0 or "worker.1 stopped (rc=1)" not in last:
        fail(f"dead-worker: exit {run.proc.returncode}, worker not named at the end", run.log)
    if "nosuchtransport" not in last:
        fail("dead-worker: the reason is not in the last lines", run.log)
    say(f"dead-worker: make run named the worker and why, exit {run.proc.returncode}")


def main() -> None:
    if sys.argv[1:2] == ["--embedded-in"]:
        embedded_runs(Path(sys.argv[2]))
        return
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    began = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="bo1-smoke-"))  # mode 0700, as `mktemp -d` makes it
    clone = home / "bo1site"
    try:
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        say(f"fresh clone of {repo} in {clone} (parent mode {home.stat().st_mode & 0o777:o})")

        local = MakeRun(clone, "local", {"BO1_STORES": "local"})
        token = local.wait_until_serving(FIRST_START_SECONDS)
        deliberate(local, token)
        local.interrupt([])

        if not in_empty_network_namespace(clone):
            say("no network namespace can be made here: embedded runs on this machine's network")
            embedded_runs(clone)

        dead_worker_is_named(clone)
        if processes_of(clone, cluster_places(clone)):
            fail("processes of the clone are left at the end")
    finally:
        subprocess.run(["make", "clean"], cwd=clone, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    say(f"passed in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
