"""A generated source of the original service's shape, written with COPY and pipelines.

Every session is a pure function of its number (seeded), so PostgreSQL and Redis get the same
events (the duplicates the import drops) without keeping anything in memory.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import redis

logger = logging.getLogger("bench_import")

BATCH = 2_000
START = datetime(2026, 6, 2, tzinfo=UTC)
# The status mix of a long-running deployment: mostly finished sessions.
STATUSES = [
    ("completed", 0.80),
    ("failed", 0.04),
    ("killed", 0.04),
    ("terminated", 0.03),
    ("created", 0.03),
    ("paused", 0.02),
    ("deleted", 0.02),
    ("running", 0.02),
]
PERSONAS = [
    ("CFO", "Zara Kim"),
    ("CTO", "Ada Brandt"),
    ("HR", "Mina Sato"),
    ("LEGAL", "Tom Okafor"),
]
WORDS = [
    "cash",
    "flow",
    "pilot",
    "customers",
    "churn",
    "staffing",
    "risk",
    "legal",
    "exposure",
    "budget",
    "quarter",
    "margin",
    "pricing",
    "rollout",
    "contract",
    "supplier",
    "market",
    "demand",
    "capacity",
    "hiring",
    "runway",
    "board",
    "approval",
]


# Contribution texts (about 200 characters each), drawn from a fixed pool: generating three
# million of them word by word would take longer than the import being measured.
TEXTS = [" ".join(random.Random(n).choice(WORDS) for _ in range(30)) for n in range(200)]


@dataclass(frozen=True)
class Plan:
    sessions: int
    events: int
    users: int

    def user_id(self, n: int) -> str:
        return str(uuid.UUID(int=n + 1))

    def session_id(self, i: int) -> str:
        return f"bo1_{uuid.UUID(int=(i + 1) * 7919, version=4)}"

    def status(self, i: int) -> str:
        point = random.Random(i * 31 + 7).random()
        for status, share in STATUSES:
            if point < share:
                return status
            point -= share
        return "completed"

    def created_at(self, i: int) -> datetime:
        # Spread over six months, oldest first (the partitions run from 2026-06).
        return START + timedelta(seconds=i * (180 * 86400 / max(self.sessions, 1)))

    def events_for(self, i: int) -> list[dict[str, Any]]:
        """The session's event envelopes, as bo1's EventPublisher wrote them."""
        status = self.status(i)
        if status == "created":
            return []
        rng = random.Random(i)
        per = self.events / max(self.sessions * (1 - 0.03), 1)
        count = max(4, round(per * rng.uniform(0.7, 1.3)))
        sid = self.session_id(i)
        at = self.created_at(i) + timedelta(seconds=2)
        out: list[dict[str, Any]] = []

        def emit(event_type: str, data: dict[str, Any]) -> None:
            nonlocal at
            at += timedelta(milliseconds=rng.randint(15, 4000))
            out.append(
                {
                    "event_type": event_type,
                    "session_id": sid,
                    "sequence": len(out) + 1,
                    "timestamp": at.isoformat(),
                    "data": data,
                }
            )

        board = rng.sample(PERSONAS, 3)
        emit(
            "decomposition_complete",
            {
                "sub_problems": [{"id": "sp_1", "goal": "Assess cost and revenue impact"}],
                "count": 1,
                "sub_problem_index": 0,
            },
        )
        emit(
            "persona_selected",
            {"personas": [{"code": c, "name": n} for c, n in board], "sub_problem_index": 0},
        )
        finished = status in ("completed", "deleted")
        tail = 5 if finished else 0
        round_number = 1
        while len(out) < count - tail:
            for code, name in board:
                if len(out) >= count - tail:
                    break
                text = TEXTS[rng.randrange(len(TEXTS))]
                emit(
                    "contribution",
                    {
                        "persona_code": code,
                        "persona_name": name,
                        "round": round_number,
                        "sub_problem_index": 0,
                        "content": f"{name} ({code}), round {round_number}: {text}.",
                    },
                )
            if len(out) < count - tail:
                emit(
                    "facilitator_decision",
                    {"action": "continue", "round": round_number, "sub_problem_index": 0},
                )
            round_number += 1
        if finished:
            for code, name in board:
                emit(
                    "persona_vote",
                    {
                        "persona_code": code,
                        "persona_name": name,
                        "recommendation": "Run a 90-day pilot first",
                        "confidence": 0.7,
                        "conditions": ["budget capped"],
                        "sub_problem_index": 0,
                    },
                )
            emit(
                "synthesis_complete",
                {"synthesis": "## Recommendation\nRun a pilot.", "sub_problem_index": 0},
            )
            emit(
                "complete",
                {
                    "session_id": sid,
                    "final_output": "## Recommendation\nRun a pilot.",
                    "total_cost": 0.12,
                    "total_rounds": round_number - 1,
                },
            )
        elif status == "failed":
            emit(
                "error",
                {
                    "error": "Meeting completed without generating synthesis.",
                    "error_type": "GraphExecutionError",
                    "recoverable": True,
                },
            )
        return out

    def row(self, i: int, events: list[dict[str, Any]]) -> list[Any]:
        status = self.status(i)
        created = self.created_at(i)
        updated = (
            datetime.fromisoformat(events[-1]["timestamp"]) if events else created
        ) + timedelta(milliseconds=20)
        done = status in ("completed", "deleted")
        rounds = max((e["data"].get("round", 0) for e in events), default=0)
        return [
            self.session_id(i),
            self.user_id(i % self.users),
            f"Should we {random.Random(i).choice(WORDS)} the {random.Random(i + 1).choice(WORDS)}"
            f" plan this year? (session {i})",
            json.dumps({"budget_eur": 10_000 + i % 90_000, "team_size": 3 + i % 40}),
            status,
            "synthesis" if done else ("convergence" if i % 7 == 0 else "problem_decomposition"),
            f"{(i % 997) / 1000:.4f}" if done else "0",
            0,
            rounds if done else 0,
            created.isoformat(),
            updated.isoformat(),
            "## Recommendation\nRun a pilot." if done else None,
            "Run a 90-day pilot before committing." if done else None,
            "user_cancelled" if status == "terminated" else None,
            "Changed priorities" if status == "terminated" else None,
            updated.isoformat() if status == "terminated" else None,
        ]


SESSION_COLUMNS = (
    "id, user_id, problem_statement, problem_context, status, phase, total_cost, total_tokens, "
    "round_number, created_at, updated_at, synthesis_text, final_recommendation, "
    "termination_type, termination_reason, terminated_at"
)

# Indexes and constraints of bo1's schema the import does not read through: dropped before the
# load (a GIN index on three million jsonb rows would take most of the generation time).
DROPS = [
    "ALTER TABLE session_events DROP CONSTRAINT IF EXISTS session_events_session_id_fkey",
    "ALTER TABLE session_events DROP CONSTRAINT IF EXISTS fk_session_events_user",
    "ALTER TABLE recommendations DROP CONSTRAINT IF EXISTS recommendations_session_id_fkey",
    "ALTER TABLE recommendations DROP CONSTRAINT IF EXISTS fk_recommendations_user_id",
    "ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_user_id_fkey",
    "DROP INDEX IF EXISTS idx_session_events_data",
    "DROP INDEX IF EXISTS idx_session_events_event_type",
    "DROP INDEX IF EXISTS idx_session_events_user_id",
    "DROP INDEX IF EXISTS idx_session_events_created_at",
    "DROP INDEX IF EXISTS idx_session_events_session_sequence",
    "DROP INDEX IF EXISTS unique_session_sequence",
    "DROP INDEX IF EXISTS idx_session_events_session_created_covering",
]


def _copy(cur: Any, table: str, columns: str, rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)


def generate_postgres(url: str, *, sessions: int, events: int, users: int) -> Plan:
    plan = Plan(sessions=sessions, events=events, users=users)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("TRUNCATE users CASCADE")
        for statement in DROPS:
            cur.execute(statement)
        _copy(
            cur,
            "users",
            "id, email, auth_provider",
            [[plan.user_id(n), f"User{n}@Example.com", "google"] for n in range(users)],
        )
        written = 0
        for start in range(0, sessions, BATCH):
            session_rows, event_rows, vote_rows = [], [], []
            for i in range(start, min(start + BATCH, sessions)):
                envelopes = plan.events_for(i)
                row = plan.row(i, envelopes)
                session_rows.append(row)
                for envelope in envelopes:
                    event_rows.append(
                        [
                            row[0],
                            envelope["event_type"],
                            envelope["sequence"],
                            json.dumps(envelope),
                            row[1],
                            envelope["timestamp"],
                        ]
                    )
                    if envelope["event_type"] == "persona_vote":
                        d = envelope["data"]
                        vote_rows.append(
                            [
                                row[0],
                                0,
                                d["persona_code"],
                                d["persona_name"],
                                d["recommendation"],
                                "Limits the downside.",
                                "0.70",
                                json.dumps(d["conditions"]),
                                "1.00",
                                envelope["timestamp"],
                                row[1],
                            ]
                        )
            _copy(cur, "sessions", SESSION_COLUMNS, session_rows)
            _copy(
                cur,
                "session_events",
                "session_id, event_type, sequence, data, user_id, created_at",
                event_rows,
            )
            _copy(
                cur,
                "recommendations",
                "session_id, sub_problem_index, persona_code, persona_name, recommendation, "
                "reasoning, confidence, conditions, weight, created_at, user_id",
                vote_rows,
            )
            written += len(event_rows)
            if (start // BATCH) % 10 == 0:
                logger.info("generated %d sessions, %d events", start + len(session_rows), written)
        logger.info("indexing session_events (session_id, created_at, id)")
        cur.execute(
            "CREATE INDEX bench_session_events_session ON session_events "
            "(session_id, created_at, id)"
        )
        cur.execute("ANALYZE")
    conn.close()
    return plan


def generate_redis(url: str, source_url: str, plan: Plan, *, share: float) -> None:
    """Metadata and full event histories for the most recent `share` of the sessions."""
    client = redis.Redis.from_url(url)
    first = int(plan.sessions * (1 - share))
    pipe = client.pipeline(transaction=False)
    queued = 0
    for i in range(first, plan.sessions):
        envelopes = plan.events_for(i)
        row = plan.row(i, envelopes)
        sid, status = row[0], row[4]
        started = plan.created_at(i).timestamp() + 1
        meta: dict[str, Any] = {
            "status": status,
            "phase": None,
            "user_id": row[1],
            "created_at": row[9],
            "updated_at": row[10],
            "problem_statement": row[2],
            "problem_context": json.loads(row[3]),
            "started_at": str(started) if status != "created" else None,
        }
        if status in ("completed", "failed", "killed"):
            meta[f"{status}_at"] = str(datetime.fromisoformat(row[10]).timestamp())
        if status == "killed":
            meta.update(kill_reason="User requested stop", killed_by=row[1])
        if status == "failed":
            meta["error"] = "Meeting completed without generating synthesis. Please retry."
        pipe.set(f"metadata:{sid}", json.dumps(meta), ex=604800)
        if envelopes:
            history = [json.dumps(e) for e in envelopes]
            if i % 100 == 0 and status == "running":
                # The last event of a few running sessions never reached PostgreSQL either.
                extra = dict(
                    envelopes[-1],
                    sequence=len(envelopes) + 1,
                    timestamp=(
                        datetime.fromisoformat(envelopes[-1]["timestamp"]) + timedelta(seconds=1)
                    ).isoformat(),
                )
                history.append(json.dumps(extra))
                member = {
                    "session_id": sid,
                    "event_type": extra["event_type"],
                    "sequence": extra["sequence"],
                    "event_data": extra,
                    "retry_count": 0,
                }
                pipe.zadd("failed_events:queue", {json.dumps(member): started})
                queued += 1
            pipe.rpush(f"events_history:{sid}", *history)
            pipe.expire(f"events_history:{sid}", 604800)
        pipe.sadd(f"user_sessions:{row[1]}", sid)
        if (i - first) % 500 == 499:
            pipe.execute()
    pipe.execute()
    logger.info(
        "Redis: %d sessions with metadata and history, %d queued events",
        plan.sessions - first,
        queued,
    )
    client.close()
