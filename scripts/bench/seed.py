"""Seed the benchmark database fast: sessions, events, users and tokens from generate_series.

A fresh load drops the two big tables' indexes and keys, inserts with INSERT ... SELECT,
rebuilds them, then VACUUM ANALYZE (so the visibility map allows index-only scans). A table
`bench_seed` records what was loaded, so the next run reuses it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import psycopg2
from psycopg2 import sql

from .config import ROOT, BenchConfig

logger = logging.getLogger(__name__)

HOT_USER = "bench_hot"
WRITER_USER = "bench_writer"  # creates sessions during the run, so the seed stays as it was
RUNNER_USER = "bench_runner"  # owns the concurrent deliberations
BIG_TABLES = ("sessions", "session_events")

# One deliberation's transcript, in order (DESIGN.md "Events"): 3 personas, 2 rounds.
TRANSCRIPT = [
    "session_started",
    "decomposition_started",
    "decomposition_complete",
    "persona_selected",
    "persona_selected",
    "persona_selected",
    "persona_selection_complete",
    "initial_round_started",
    "contribution",
    "contribution",
    "contribution",
    "round_started",
    "contribution",
    "contribution",
    "contribution",
    "facilitator_decision",
    "round_started",
    "contribution",
    "contribution",
    "contribution",
    "facilitator_decision",
    "convergence",
    "voting_started",
    "persona_vote",
    "persona_vote",
    "persona_vote",
    "voting_complete",
    "synthesis_started",
    "synthesis_complete",
    "complete",
]
SHORT_TRANSCRIPT = 6  # the first events only: a session that never got far, or a sampled one

SEED_USERS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!bench', false, name, '', '', name || '@bench.invalid', false, true, now()
FROM (
    SELECT %(hot)s AS name
    UNION ALL SELECT %(writer)s UNION ALL SELECT %(runner)s
    UNION ALL SELECT 'bench_user_' || lpad(n::text, 4, '0') FROM generate_series(1, %(others)s) n
) names
ON CONFLICT (username) DO NOTHING;
INSERT INTO authtoken_token (key, created, user_id)
SELECT substr(md5(random()::text) || md5(random()::text), 1, 40), now(), id
FROM auth_user WHERE username LIKE 'bench\\_%%'
ON CONFLICT (user_id) DO NOTHING;
"""

# No seeded session is queued or running: those belong to live workers, and the worker's reaper
# would requeue them (the deliberation run must see only its own).
# Row i is created at a time that grows with i (the table's physical order is time order, as it
# would be in production); every `hot_step`-th row belongs to the hot user, so its sessions are
# spread across the whole table rather than packed on a few pages.
SEED_SESSIONS_SQL = """
WITH others AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM auth_user WHERE username LIKE 'bench\\_user\\_%%'
), hot AS (
    SELECT id AS hot_id FROM auth_user WHERE username = %(hot)s
), rows AS MATERIALIZED (
    SELECT i,
           i %% %(hot_step)s = 0 AND i / %(hot_step)s <= %(hot_count)s AS is_hot,
           random() AS r,
           now() - interval '365 days'
               + (i::float8 / %(total)s) * interval '365 days'
               + random() * interval '30 seconds' AS created
    FROM generate_series(1, %(total)s) AS i
), shaped AS (
    SELECT rows.*,
           CASE
               WHEN r < 0.83 THEN 'completed'
               WHEN r < 0.87 THEN 'failed'
               WHEN r < 0.90 THEN 'killed'
               WHEN r < 0.95 THEN 'deleted'
               WHEN r < 0.98 THEN 'created'
               ELSE 'paused'
           END AS st
    FROM rows
)
INSERT INTO sessions (
    id, user_id, problem_statement, problem_context, max_rounds, idempotency_key, status,
    status_changed_at, pause_reason, phase, round_number, personas, contribution_count,
    clarification_question, total_cost, cost_limit, total_tokens, costs_by_phase,
    synthesis_text, final_recommendation, error, checkpoint, last_sequence, created_at,
    updated_at, last_activity_at, started_at, completed_at
)
SELECT
    'bo1_' || gen_random_uuid(),
    CASE WHEN is_hot THEN hot_id ELSE ids[1 + (i::bigint * 7919) %% array_length(ids, 1)] END,
    'Should we ' || (ARRAY['expand into', 'exit', 'hire for', 'rebuild', 'outsource'])[1 + i %% 5]
        || ' the ' || (ARRAY['European', 'mobile', 'enterprise', 'retail', 'data'])[1 + i %% 7 %% 5]
        || ' business in ' || (2020 + i %% 9) || '? Case ' || i
        || '. We have limited budget, a small team and a board meeting next month.',
    jsonb_build_object('budget_usd', (i %% 50) * 10000, 'team_size', 3 + i %% 40),
    6,
    NULL,
    st,
    created + interval '5 minutes',
    CASE st WHEN 'paused' THEN 'user' ELSE '' END,
    CASE WHEN st IN ('completed', 'deleted') THEN 'complete'
         WHEN st IN ('created', 'queued') THEN 'intake' ELSE 'discussion' END,
    CASE WHEN st IN ('created', 'queued') THEN 0 ELSE 2 END,
    CASE WHEN st IN ('created', 'queued') THEN '[]'::jsonb ELSE
        '[{"code": "cfo", "name": "Maria Santos"}, {"code": "cto", "name": "Zara Kim"},
          {"code": "growth", "name": "Sam Lee"}]'::jsonb END,
    CASE WHEN st IN ('created', 'queued') THEN 0 ELSE 9 END,
    '',
    CASE WHEN st IN ('created', 'queued') THEN 0 ELSE round((0.02 + r / 10)::numeric, 6) END,
    NULL,
    CASE WHEN st IN ('created', 'queued') THEN 0 ELSE 20000 + (i %% 30000) END,
    CASE WHEN st IN ('created', 'queued') THEN '{}'::jsonb
         ELSE '{"decomposition": "0.004", "discussion": "0.031", "voting": "0.009"}'::jsonb END,
    CASE WHEN st = 'completed' THEN repeat('Executive summary: proceed in stages, with a '
        || 'budget gate after each quarter and a named owner for each risk. ', 4) ELSE '' END,
    CASE WHEN st = 'completed'
         THEN 'Proceed with a staged rollout; revisit after the first quarter.' ELSE '' END,
    CASE WHEN st = 'failed'
         THEN '{"code": "provider_error", "message": "The model provider failed."}'::jsonb END,
    NULL,
    CASE WHEN NOT (i %% 10 = 1 OR is_hot) OR st IN ('created', 'queued') THEN 0
         WHEN is_hot AND st = 'completed' THEN %(full)s
         ELSE %(short)s END,
    created,
    created + interval '5 minutes',
    CASE WHEN st IN ('created', 'queued') THEN NULL ELSE created + interval '5 minutes' END,
    CASE WHEN st IN ('created', 'queued') THEN NULL ELSE created + interval '2 seconds' END,
    CASE WHEN st IN ('completed', 'failed', 'killed', 'deleted')
         THEN created + interval '5 minutes' END
FROM shaped CROSS JOIN others CROSS JOIN hot
"""

SEED_EVENTS_SQL = """
INSERT INTO session_events (session_id, sequence, event_type, data, idempotency_key, created_at)
SELECT s.id, n, (%(types)s::text[])[n],
       CASE (%(types)s::text[])[n]
           WHEN 'contribution' THEN jsonb_build_object(
               'sub_problem_index', 0, 'round', 1 + (n > 11)::int + (n > 16)::int,
               'persona_code', 'cfo', 'persona_name', 'Maria Santos',
               'content', repeat('The numbers only work if the first quarter proves demand. ', 5))
           WHEN 'persona_vote' THEN jsonb_build_object(
               'sub_problem_index', 0, 'persona_code', 'cto', 'recommendation', 'Proceed, staged',
               'confidence', 0.8, 'conditions', jsonb_build_array('quarterly budget gate'))
           WHEN 'complete' THEN jsonb_build_object(
               'synthesis', 'Proceed in stages.', 'total_cost', s.total_cost::text,
               'total_tokens', s.total_tokens, 'stop_reason', 'converged')
           ELSE jsonb_build_object('sub_problem_index', 0)
       END,
       NULL,
       s.created_at + n * interval '5 seconds'
FROM sessions s, generate_series(1, s.last_sequence) AS n
WHERE s.last_sequence > 0
"""


@dataclass
class Seeded:
    """What the benchmark needs to know about the seeded data."""

    sessions: int
    events: int
    users: int
    hot_user_id: int
    hot_token: str
    hot_visible: int
    writer_token: str
    runner_token: str
    seconds: float
    reused: bool


def connect(url: str) -> Any:
    return psycopg2.connect(url, connect_timeout=5)


def ensure_database(url: str) -> None:
    """Create the bench database when it is missing (never any other)."""
    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = connect(parts._replace(path="/postgres").geturl())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            logger.info("created database %s", name)
    admin.close()


def migrate(config: BenchConfig) -> None:
    subprocess.run(
        [config.python, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        # As the Procfile's release line: a migration that rewrites a million rows takes longer
        # than the statement timeout that guards requests.
        env=config.child_env(DATABASE_STATEMENT_TIMEOUT="0"),
        check=True,
    )


def _params(config: BenchConfig) -> dict[str, int]:
    return {
        "sessions": config.sessions,
        "users": config.users,
        "hot_user_sessions": config.hot_user_sessions,
        "version": 2,
    }


def _recorded(cursor: Any) -> dict[str, Any] | None:
    cursor.execute("SELECT to_regclass('bench_seed') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return None
    cursor.execute("SELECT params, seconds FROM bench_seed ORDER BY loaded_at DESC LIMIT 1")
    row = cursor.fetchone()
    return {"params": row[0], "seconds": row[1]} if row else None


def _drop_keys_and_indexes(cursor: Any) -> list[str]:
    """Drop the big tables' keys and indexes; returns the statements that rebuild them."""
    tables = ",".join(f"'{t}'::regclass" for t in BIG_TABLES)
    cursor.execute(
        f"""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype
        FROM pg_constraint
        WHERE contype IN ('p', 'u', 'f') AND (conrelid IN ({tables}) OR confrelid IN ({tables}))
        ORDER BY CASE contype WHEN 'f' THEN 0 ELSE 1 END
        """
    )
    constraints = cursor.fetchall()
    cursor.execute(
        f"""
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid IN ({tables})
          AND i.indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conindid <> 0)
        """
    )
    indexes = cursor.fetchall()
    for table, name, _, _ in constraints:  # foreign keys first
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    rebuild = [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition, kind in reversed(constraints)
        if kind != "f"
    ]
    rebuild += [definition for _, definition in indexes]
    rebuild += [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition, kind in constraints
        if kind == "f"
    ]
    return rebuild


def _replace_bench_users(cursor: Any, config: BenchConfig) -> None:
    """Empty the big tables and make the bench's users (and their tokens) afresh."""
    # Truncating also empties whatever references the sessions (deliberation tables).
    cursor.execute("TRUNCATE sessions, session_events CASCADE")
    # (no parameters: psycopg2 leaves a single % alone)
    cursor.execute(
        "DELETE FROM authtoken_token WHERE user_id IN "
        "(SELECT id FROM auth_user WHERE username LIKE 'bench\\_%')"
    )
    cursor.execute("DELETE FROM auth_user WHERE username LIKE 'bench\\_%'")
    users = {"hot": HOT_USER, "writer": WRITER_USER, "runner": RUNNER_USER,
             "others": max(config.users - 1, 1)}  # fmt: skip
    cursor.execute(SEED_USERS_SQL, users)


def _insert_sessions_and_events(cursor: Any, config: BenchConfig, started: float) -> None:
    hot_count = min(config.hot_user_sessions, config.sessions)
    hot_step = max(1, config.sessions // max(hot_count, 1))
    logger.info("seeding %d sessions", config.sessions)
    cursor.execute(
        SEED_SESSIONS_SQL,
        {"hot": HOT_USER, "hot_step": hot_step, "hot_count": hot_count,
         "total": config.sessions, "full": len(TRANSCRIPT), "short": SHORT_TRANSCRIPT},
    )  # fmt: skip
    logger.info("seeding events (%.0fs so far)", time.monotonic() - started)
    cursor.execute(SEED_EVENTS_SQL, {"types": TRANSCRIPT})


def _recount_sessions(cursor: Any) -> None:
    """The per-user counters the disabled trigger would have kept, in one pass."""
    cursor.execute("SELECT to_regclass('session_counts') IS NOT NULL")
    if cursor.fetchone()[0]:
        cursor.execute("DELETE FROM session_count_changes")
        cursor.execute("DELETE FROM session_counts")
        cursor.execute(
            "INSERT INTO session_counts (user_id, status, count)"
            " SELECT user_id, status, count(*) FROM sessions GROUP BY user_id, status"
        )


def _record_seed(cursor: Any, config: BenchConfig, seconds: float) -> None:
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS bench_seed (loaded_at timestamptz NOT NULL DEFAULT now(),"
        " params jsonb NOT NULL, seconds float8 NOT NULL)"
    )
    cursor.execute("DELETE FROM bench_seed")
    cursor.execute(
        "INSERT INTO bench_seed (params, seconds) VALUES (%s, %s)",
        [json.dumps(_params(config)), seconds],
    )


def _vacuum(conn: Any, started: float) -> None:
    conn.autocommit = True
    with conn.cursor() as cursor:
        logger.info("VACUUM ANALYZE (%.0fs so far)", time.monotonic() - started)
        for table in (*BIG_TABLES, "auth_user", "authtoken_token", "session_counts"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    conn.autocommit = False


def _load(config: BenchConfig, conn: Any) -> float:
    started = time.monotonic()
    with conn, conn.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL synchronous_commit = off")
        _replace_bench_users(cursor, config)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending checks may block the ALTERs
        rebuild = _drop_keys_and_indexes(cursor)
        # Row triggers (the per-user counters) are rebuilt in one pass afterwards instead.
        cursor.execute("ALTER TABLE sessions DISABLE TRIGGER USER")
        _insert_sessions_and_events(cursor, config, started)
        logger.info("rebuilding keys and indexes (%.0fs so far)", time.monotonic() - started)
        for statement in rebuild:
            cursor.execute(statement)
        cursor.execute("ALTER TABLE sessions ENABLE TRIGGER USER")
        _recount_sessions(cursor)
        _record_seed(cursor, config, time.monotonic() - started)
    _vacuum(conn, started)
    seconds = time.monotonic() - started
    with conn, conn.cursor() as cursor:
        cursor.execute("UPDATE bench_seed SET seconds = %s", [seconds])
    return seconds


def reset_run_data(conn: Any) -> None:
    """Forget what earlier runs wrote (the writer's and the runner's sessions)."""
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM auth_user WHERE username IN (%s, %s)", [WRITER_USER, RUNNER_USER]
        )
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return
        cursor.execute(
            "DELETE FROM session_events WHERE session_id IN "
            "(SELECT id FROM sessions WHERE user_id = ANY(%s))",
            [ids],
        )
        # Whatever else references these sessions (deliberation tables) goes with them.
        cursor.execute(
            """
            SELECT conrelid::regclass::text, a.attname
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = 'sessions'::regclass
              AND c.conrelid <> 'session_events'::regclass
            """
        )
        for table, column in cursor.fetchall():
            cursor.execute(
                f'DELETE FROM {table} WHERE "{column}" IN '
                "(SELECT id FROM sessions WHERE user_id = ANY(%s))",
                [ids],
            )
        cursor.execute("DELETE FROM sessions WHERE user_id = ANY(%s)", [ids])
        deleted = cursor.rowcount
    if deleted:
        # Vacuum what the deletes (and the earlier run's writes) left dead, as autovacuum would:
        # the machine's PostgreSQL may run without it (this one has autovacuum = off), and runs
        # must not drift as dead rows pile up. The count trigger appends a change per session
        # created or deleted: they are folded into session_counts first, as the repair would.
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT session_counts_fold()")
            for table in ("sessions", "session_events", "session_counts", "session_count_changes"):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        conn.autocommit = False


def describe(conn: Any, seconds: float, reused: bool) -> Seeded:
    with conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM session_events")
        events = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM sessions")
        sessions = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT count(*) FROM auth_user WHERE username LIKE 'bench\\_user\\_%%'"
            " OR username = %s",
            [HOT_USER],
        )
        users = int(cursor.fetchone()[0])
        tokens = {}
        for name in (HOT_USER, WRITER_USER, RUNNER_USER):
            cursor.execute(
                "SELECT u.id, t.key FROM auth_user u JOIN authtoken_token t ON t.user_id = u.id"
                " WHERE u.username = %s",
                [name],
            )
            tokens[name] = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM sessions WHERE user_id = %s AND status <> 'deleted'",
            [tokens[HOT_USER][0]],
        )
        hot_visible = int(cursor.fetchone()[0])
    return Seeded(
        sessions=sessions,
        events=events,
        users=users,
        hot_user_id=tokens[HOT_USER][0],
        hot_token=tokens[HOT_USER][1],
        hot_visible=hot_visible,
        writer_token=tokens[WRITER_USER][1],
        runner_token=tokens[RUNNER_USER][1],
        seconds=seconds,
        reused=reused,
    )


def seed(config: BenchConfig) -> Seeded:
    """Create, migrate and fill the bench database, or reuse the data already there."""
    ensure_database(config.database_url)
    migrate(config)
    conn = connect(config.database_url)
    try:
        with conn, conn.cursor() as cursor:
            recorded = _recorded(cursor)
        matches = recorded is not None and recorded["params"] == _params(config)
        if matches or (config.skip_seed and recorded is not None):
            logger.info("reusing the seeded data (%s)", recorded["params"] if recorded else "")
            reset_run_data(conn)
            return describe(conn, float(recorded["seconds"]) if recorded else 0.0, True)
        if config.skip_seed:
            raise SystemExit("bench: --skip-seed given but the bench database has no seed")
        seconds = _load(config, conn)
        return describe(conn, seconds, False)
    finally:
        conn.close()
