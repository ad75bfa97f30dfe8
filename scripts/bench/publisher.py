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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True, help="username that owns the sessions")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second in all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4, help="concurrent writers")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.utils import timezone

    from sessions_app.models import DeliberationSession, Status
    from sessions_app.services import NewEvent, session_record_progress

    user = get_user_model().objects.get(username=args.user)
    now = timezone.now()
    sessions = DeliberationSession.objects.bulk_create(
        DeliberationSession(
            user=user,
            problem_statement=f"Stream fan-out session {n}: should we expand?",
            status=Status.RUNNING,
            started_at=now,
        )
        for n in range(args.sessions)
    )
    ids = [s.id for s in sessions]
    sys.stdout.write(json.dumps({"ids": ids}) + "\n")
    sys.stdout.flush()
    if not sys.stdin.readline():
        return 1

    # Several writers, as several workers would be: each paces its own share of the sessions.
    threads = max(1, min(args.threads, len(ids)))
    sent = [0] * threads
    late = [0.0] * threads

    def publish(t: int) -> None:
        mine = ids[t::threads]
        interval = threads / args.rate
        # The writers take turns on one schedule from the same start, t/threads of an interval
        # apart, so the events arrive evenly spread at the total rate rather than `threads` at the
        # same instant.
        next_at = started + interval * t / threads
        try:
            while time.monotonic() - started < args.seconds:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late[t] = max(late[t], -wait)
                session_record_progress(
                    session_id=mine[sent[t] % len(mine)],
                    events=[
                        NewEvent(
                            "contribution",
                            {
                                "round": 1,
                                "persona_code": "cfo",
                                "persona_name": "Maria Santos",
                                "content": "Demand first, then scale.",
                            },
                        )
                    ],
                )
                sent[t] += 1
                next_at += interval
        finally:
            connections.close_all()

    started = time.monotonic()
    cpu_started = time.process_time()
    workers = [threading.Thread(target=publish, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    per_session: dict[str, int] = {}
    for t in range(threads):
        mine = ids[t::threads]
        for n, session_id in enumerate(mine):
            per_session[session_id] = sent[t] // len(mine) + (1 if n < sent[t] % len(mine) else 0)
    total = sum(sent)
    summary = {
        "sent": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "max_late_s": max(late),
        "writers": threads,
        # What a worker spends per engine step on the store (the publisher does nothing else).
        "cpu_ms_per_event": round(1000 * cpu / max(total, 1), 3),
        "per_session": per_session,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
