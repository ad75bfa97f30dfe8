"""A child process in its own process group, its output in a log file, stopped for sure.

Shared by the benchmark's servers (scripts/bench/servers.py) and the tests' real processes
(tests/processes.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG_TAIL = 4000  # characters of its log an error about a process quotes


class ManagedProcess:
    """`argv` started in `cwd` with `env`; its stdout and stderr go to `log_path`."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], *, log_path: Path, cwd: Path
    ) -> None:
        log_path.parent.mkdir(exist_ok=True)
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
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
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-LOG_TAIL:]}")
            if ready():
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} not ready ({what}) in {timeout}s:\n{self.log()[-LOG_TAIL:]}"
        )

    def children(self) -> list[int]:
        """The pids of the process group's members other than the leader (e.g. gunicorn workers)."""
        out = subprocess.run(
            ["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split() if int(p) != self.proc.pid]

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
