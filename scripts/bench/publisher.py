"""Emit events into running sessions through the store's own service, for the SSE fan-out run.

Run as a child process with the bench's environment: it creates the sessions (already running),
prints their ids as one JSON line, waits for a line on stdin, then appends events round-robin at
the requested rate from a few writer threads with `session_record_progress` (PostgreSQL, then the
Redis stream on commit), exactly as a worker does, and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True, help="username that owns the sessions")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second in all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4, help="concurrent writers")
    return parser.parse_args(argv)


def _running_sessions(username: str, count: int) -> list[str]:
    """Create `count` sessions, already running, for the user; their ids."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from sessions_app.models import DeliberationSession, Status

    user = get_user_model().objects.get(username=username)
    now = timezone.now()
    sessions = DeliberationSession.objects.bulk_create(
        DeliberationSession(
            user=user,
            problem_statement=f"Stream fan-out session {n}: should we expand?",
            status=Status.RUNNING,
            started_at=now,
        )
        for n in range(count)
    )
    return [s.id for s in sessions]


def _contribution_writer() -> Callable[[str], None]:
    """One engine step's write, as a worker makes it (imported once, after django.setup)."""
    from sessions_app.services import NewEvent, session_record_progress
    from vocabulary import EventType

    data = {"round": 1, "persona_code": "cfo", "persona_name": "Maria Santos",
            "content": "Demand first, then scale."}  # fmt: skip

    def write(session_id: str) -> None:
        session_record_progress(
            session_id=session_id, events=[NewEvent(EventType.CONTRIBUTION, dict(data))]
        )

    return write


class Writers:
    """Several writers, as several workers would be: each paces its own share of the sessions."""

    def __init__(self, ids: list[str], threads: int, rate: float, seconds: float) -> None:
        self.ids, self.rate, self.seconds = ids, rate, seconds
        self.write = _contribution_writer()
        self.threads = max(1, min(threads, len(ids)))
        self.sent = [0] * self.threads
        self.late = [0.0] * self.threads
        self.started = 0.0

    def run(self) -> tuple[float, float]:
        """Write until the time is up; the seconds it took and the CPU seconds it used."""
        self.started = time.monotonic()
        cpu_started = time.process_time()
        workers = [threading.Thread(target=self._publish, args=(t,)) for t in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.monotonic() - self.started, time.process_time() - cpu_started

    def _publish(self, t: int) -> None:
        from django.db import connections

        mine = self.ids[t :: self.threads]
        interval = self.threads / self.rate
        # The writers take turns on one schedule from the same start, t/threads of an interval
        # apart, so the events arrive evenly spread at the total rate rather than `threads` at
        # the same instant.
        next_at = self.started + interval * t / self.threads
        try:
            while time.monotonic() - self.started < self.seconds:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    self.late[t] = max(self.late[t], -wait)
                self.write(mine[self.sent[t] % len(mine)])
                self.sent[t] += 1
                next_at += interval
        finally:
            connections.close_all()

    def per_session(self) -> dict[str, int]:
        """How many events each session was sent."""
        counts: dict[str, int] = {}
        for t in range(self.threads):
            mine = self.ids[t :: self.threads]
            for n, session_id in enumerate(mine):
                counts[session_id] = self.sent[t] // len(mine) + (n < self.sent[t] % len(mine))
        return counts


def _print_json(value: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    import django

    django.setup()
    ids = _running_sessions(args.user, args.sessions)
    _print_json({"ids": ids})
    if not sys.stdin.readline():
        return 1
    writers = Writers(ids, args.threads, args.rate, args.seconds)
    elapsed, cpu = writers.run()
    total = sum(writers.sent)
    _print_json(
        {
            "sent": total,
            "seconds": elapsed,
            "rate": total / elapsed,
            "max_late_s": max(writers.late),
            "writers": writers.threads,
            # What a worker spends per engine step on the store (the publisher does nothing else).
            "cpu_ms_per_event": round(1000 * cpu / max(total, 1), 3),
            "per_session": writers.per_session(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
