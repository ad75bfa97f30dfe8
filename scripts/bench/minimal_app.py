"""The floor the list endpoint is compared with: the same list job in a bare WSGI app.

Raw psycopg2 and redis-py, no framework: look the token up in a table loaded at start, run the
same page query and exact count as the API, one MGET for the page's hot entries, json.dumps.
Served by gunicorn (gthread workers, a PostgreSQL connection per thread) in the same run.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import psycopg2
import redis

PAGE_SQL = """
SELECT id, problem_statement, status, phase, round_number, total_cost, total_tokens,
       contribution_count, pause_reason, final_recommendation, created_at, updated_at,
       started_at, completed_at, last_activity_at
FROM sessions
WHERE user_id = %s AND NOT (status = 'deleted')
ORDER BY created_at DESC, id DESC
LIMIT %s OFFSET %s
"""
# The same exact total the API reads: the per-status counters (sessions_app.SessionCount) and
# the changes appended since they were folded (SessionCountChange).
COUNT_SQL = (
    "SELECT SUM(count) FROM session_counts WHERE user_id = %s AND NOT (status = 'deleted')"
    " GROUP BY user_id UNION ALL SELECT SUM(delta) FROM session_count_changes"
    " WHERE user_id = %s AND NOT (status = 'deleted') GROUP BY user_id"
)
LIVE_FIELDS = ("status", "phase", "round_number", "total_cost", "total_tokens", "updated_at")
QUANTUM = Decimal("0.000001")

_tokens: dict[str, int] = {
    key: int(user_id) for key, user_id in json.loads(os.environ.get("BENCH_TOKENS", "{}")).items()
}
_local = threading.local()
_redis = redis.Redis.from_url(os.environ["REDIS_URL"])

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _db() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg2.connect(os.environ["DATABASE_URL"])
        conn.autocommit = True
        _local.conn = conn
    return conn


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": r[0],
        "problem_statement": r[1][:200],
        "status": r[2],
        "phase": r[3],
        "round_number": r[4],
        "total_cost": str(r[5].quantize(QUANTUM)),
        "total_tokens": r[6],
        "contributions": r[7],
        "pause_reason": r[8] or None,
        "final_recommendation": r[9] or None,
        "created_at": _iso(r[10]),
        "updated_at": _iso(r[11]),
        "started_at": _iso(r[12]),
        "completed_at": _iso(r[13]),
        "last_activity_at": _iso(r[14]),
    }


def _answer(start: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def list_sessions(user_id: int, limit: int, offset: int) -> dict[str, Any]:
    with _db().cursor() as cursor:
        cursor.execute(PAGE_SQL, [user_id, limit, offset])
        rows = [_row(r) for r in cursor.fetchall()]
        cursor.execute(COUNT_SQL, [user_id, user_id])
        total = sum(int(n) for (n,) in cursor.fetchall())
    if rows:
        found = _redis.mget([f"bo1:1:session:{r['id']}" for r in rows])
        for row, raw in zip(rows, found, strict=True):
            if raw:
                hot = json.loads(raw)
                if (hot.get("updated_at") or "") > (row["updated_at"] or ""):
                    for field in LIVE_FIELDS:
                        row[field] = hot.get(field, row[field])
    has_more = offset + len(rows) < total
    return {
        "sessions": rows,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": has_more,
        "next_offset": offset + len(rows) if has_more else None,
    }


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/health":
        return _answer(start_response, "200 OK", {"status": "ok"})
    if path != "/api/v1/sessions":
        return _answer(start_response, "404 Not Found", {"detail": "Not found."})
    auth = environ.get("HTTP_AUTHORIZATION", "")
    user_id = _tokens.get(auth[6:]) if auth.startswith("Token ") else None
    if user_id is None:
        return _answer(start_response, "401 Unauthorized", {"detail": "Invalid token."})
    query = parse_qs(environ.get("QUERY_STRING", ""))
    limit = min(max(int(query.get("limit", ["20"])[0]), 1), 100)
    offset = max(int(query.get("offset", ["0"])[0]), 0)
    return _answer(start_response, "200 OK", list_sessions(user_id, limit, offset))
