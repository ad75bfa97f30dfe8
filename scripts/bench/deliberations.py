"""100 concurrent deliberations through the API and the Procfile's worker (offline provider).

Creates the sessions and starts them all at once over HTTP, waits until every one is finished,
then checks each transcript in PostgreSQL: sequences 1..N with no gap or repeat, N equal to the
session's last_sequence, one `session_started` first and one `complete` last.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2

from vocabulary import FINISHED_STATUSES

from .config import BenchConfig
from .seed import Seeded
from .servers import start_worker

logger = logging.getLogger(__name__)

FINISHED = sorted(str(s) for s in FINISHED_STATUSES)


def _post(base: str, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read() or b"{}"))


def _check_transcripts(cursor: Any, ids: list[str]) -> dict[str, Any]:
    cursor.execute(
        """
        SELECT s.id, s.status, s.last_sequence, count(e.id), min(e.sequence), max(e.sequence),
               count(DISTINCT e.sequence),
               (array_agg(e.event_type ORDER BY e.sequence))[1],
               (array_agg(e.event_type ORDER BY e.sequence DESC))[1],
               count(*) FILTER (WHERE e.event_type = 'complete'),
               count(*) FILTER (WHERE e.event_type = 'session_started')
        FROM sessions s LEFT JOIN session_events e ON e.session_id = s.id
        WHERE s.id = ANY(%s)
        GROUP BY s.id, s.status, s.last_sequence
        """,
        [ids],
    )
    problems: list[str] = []
    statuses: dict[str, int] = {}
    events = 0
    for (
        sid,
        status,
        last,
        count,
        low,
        high,
        distinct,
        first,
        final,
        completes,
        starts,
    ) in cursor.fetchall():
        statuses[status] = statuses.get(status, 0) + 1
        events += count
        if not (count == distinct == last == (high or 0) and (low or 1) == 1):
            problems.append(f"{sid}: {count} events, sequences {low}..{high}, last_sequence {last}")
        if status == "completed" and (first, final, completes, starts) != (
            "session_started",
            "complete",
            1,
            1,
        ):
            problems.append(f"{sid}: starts with {first}, ends with {final}, {completes} complete")
    return {"statuses": statuses, "events": events, "problems": problems}


PROBLEM = "should we open an office in Lisbon next year, given a small team and a tight budget?"


def _create_and_start(base: str, token: str, count: int) -> tuple[list[str], float, float]:
    """Create `count` sessions and start them all at once through the API: their ids, the
    monotonic instant the starts began and how long the start requests took."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        body = {"max_rounds": 3}
        created = list(
            pool.map(
                lambda n: _post(base, "/api/v1/sessions", token,
                                {**body, "problem_statement": f"Deliberation {n}: {PROBLEM}"}),
                range(count),
            )
        )  # fmt: skip
        ids = [session["id"] for session in created]
        started_at = time.monotonic()
        list(pool.map(lambda sid: _post(base, f"/api/v1/sessions/{sid}/start", token, {}), ids))
    return ids, started_at, time.monotonic() - started_at


def _wait_until_finished(cursor: Any, ids: list[str], timeout: float) -> int:
    """Poll PostgreSQL until every session is finished or the time is up; how many finished."""
    deadline = time.monotonic() + timeout
    finished = 0
    while time.monotonic() < deadline:
        cursor.execute(
            "SELECT count(*) FROM sessions WHERE id = ANY(%s) AND status = ANY(%s)",
            [ids, list(FINISHED)],
        )
        finished = int(cursor.fetchone()[0])
        if finished == len(ids):
            break
        time.sleep(0.5)
    return finished


def run_deliberations(config: BenchConfig, seeded: Seeded, base: str) -> dict[str, Any]:
    count = config.deliberations
    worker = start_worker(config, concurrency=config.workers)
    try:
        ids, started_at, start_seconds = _create_and_start(base, seeded.runner_token, count)
        conn = psycopg2.connect(config.database_url)
        conn.autocommit = True
        with conn.cursor() as cursor:
            finished = _wait_until_finished(cursor, ids, config.deliberation_timeout)
            total_seconds = time.monotonic() - started_at
            checked = _check_transcripts(cursor, ids)
        conn.close()
    finally:
        worker.stop()
    result = {
        "deliberations": count,
        "worker_concurrency": config.workers,
        "finished": finished,
        "start_requests_seconds": round(start_seconds, 2),
        "total_seconds": round(total_seconds, 2),
        **checked,
        "problem_count": len(checked["problems"]),
    }
    result["problems"] = checked["problems"][:20]
    logger.info(
        "deliberations: %d/%d finished in %.1f s (%s), %d events, %d problems",
        finished,
        count,
        total_seconds,
        checked["statuses"],
        checked["events"],
        len(checked["problems"]),
    )
    return result
