"""Readers for the original service's two stores. They only read: nothing is ever written there.

Both read in batches (a server-side cursor in PostgreSQL, SCAN and pipelines in Redis), so
memory stays flat however many sessions the source holds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
import psycopg2
import psycopg2.extras
import redis

from .events import SourceEvent, source_event
from .values import BrokenRecord

logger = logging.getLogger(__name__)

SESSION_COLUMNS = (
    "id",
    "user_id",
    "problem_statement",
    "problem_context",
    "status",
    "phase",
    "total_cost",
    "total_tokens",
    "round_number",
    "synthesis_text",
    "final_recommendation",
    "contribution_count",
    "created_at",
    "updated_at",
    "completed_at",
    "killed_at",
    "killed_by",
    "kill_reason",
    "terminated_at",
    "termination_type",
    "termination_reason",
)


class SourceUnavailable(Exception):
    """A store of the original service cannot be read; the message says which and why."""


@dataclass
class SessionSource:
    """Everything both stores hold about one session, read but not yet interpreted."""

    id: str
    row: dict[str, Any] | None = None
    meta_raw: Any = None  # the metadata string as Redis holds it (None: no key)
    history_raw: list[Any] = field(default_factory=list)
    pg_events: list[tuple[str, int | None, Any, datetime]] = field(default_factory=list)
    votes: list[dict[str, Any]] = field(default_factory=list)
    queued: list[Any] = field(default_factory=list)  # envelopes from failed_events
    redis_error: str = ""  # a key of the wrong type, say


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlparse(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


class PostgresSource:
    """The original's PostgreSQL, in one read-only transaction (one consistent snapshot)."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlparse(url)
        try:
            self.conn = psycopg2.connect(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                user=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
                dbname=parts.path.lstrip("/") or None,
                connect_timeout=10,
                application_name="bo1site import_bo1",
            )
            self.conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
            psycopg2.extras.register_default_jsonb(self.conn, loads=orjson.loads)
            psycopg2.extras.register_default_json(self.conn, loads=orjson.loads)
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name IN "
                    "('users', 'sessions', 'session_events', 'recommendations')"
                )
                columns: dict[str, set[str]] = defaultdict(set)
                for table, column in cur.fetchall():
                    columns[table].add(column)
        except psycopg2.Error as exc:
            raise SourceUnavailable(
                f"PostgreSQL {_safe_url(url)}: {str(exc).strip() or type(exc).__name__}"
            ) from exc
        missing = [t for t in ("users", "sessions") if t not in columns]
        if missing:
            raise SourceUnavailable(
                f"PostgreSQL {_safe_url(url)} has no {' or '.join(missing)} table: "
                "is this the original service's database?"
            )
        self.columns = columns
        self.session_columns = [c for c in SESSION_COLUMNS if c in columns["sessions"]]

    def close(self) -> None:
        self.conn.close()

    def user_emails(self) -> dict[str, str]:
        """Every user id with its email (one row per user: small beside the sessions)."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT id, email FROM users")
            return {str(uid): email for uid, email in cur.fetchall() if email}

    def count_sessions(self, since: datetime | None) -> int:
        with self.conn.cursor() as cur:
            if since is None:
                cur.execute("SELECT count(*) FROM sessions")
            else:
                cur.execute("SELECT count(*) FROM sessions WHERE updated_at >= %s", [since])
            return int(cur.fetchone()[0])

    def session_batches(self, since: datetime | None, size: int) -> Iterator[list[dict[str, Any]]]:
        """The sessions table in id order, `size` rows at a time, through a server-side cursor."""
        cols = ", ".join(self.session_columns)
        where = " WHERE updated_at >= %s" if since is not None else ""
        with self.conn.cursor(name="bo1_import_sessions") as cur:
            cur.itersize = size
            cur.execute(f"SELECT {cols} FROM sessions{where} ORDER BY id", [since] if since else [])  # noqa: S608
            while True:
                rows = cur.fetchmany(size)
                if not rows:
                    return
                yield [dict(zip(self.session_columns, r, strict=True)) for r in rows]

    def updated_at(self, ids: list[str]) -> dict[str, datetime]:
        """Which of these sessions the table has, with their updated_at."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT id, updated_at FROM sessions WHERE id = ANY(%s)", [ids])
            return dict(cur.fetchall())

    def rows(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """These sessions' rows, by id."""
        if not ids:
            return {}
        cols = ", ".join(self.session_columns)
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM sessions WHERE id = ANY(%s)", [ids])  # noqa: S608
            rows = [dict(zip(self.session_columns, v, strict=True)) for v in cur.fetchall()]
        return {row["id"]: row for row in rows}

    def fill(self, sources: dict[str, SessionSource]) -> None:
        """Add the events and votes of these sessions, each in the order the table gives."""
        ids = list(sources)
        if "session_events" in self.columns:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT session_id, event_type, sequence, data, created_at FROM session_events "
                    "WHERE session_id = ANY(%s) ORDER BY session_id, created_at, id",
                    [ids],
                )
                for sid, event_type, sequence, data, created_at in cur:
                    sources[sid].pg_events.append((event_type, sequence, data, created_at))
        if "recommendations" in self.columns:
            wanted = [
                c
                for c in (
                    "id",
                    "session_id",
                    "sub_problem_index",
                    "persona_code",
                    "persona_name",
                    "recommendation",
                    "reasoning",
                    "confidence",
                    "conditions",
                    "weight",
                    "created_at",
                )
                if c in self.columns["recommendations"]
            ]
            with self.conn.cursor() as cur:
                cur.execute(
                    f"SELECT {', '.join(wanted)} FROM recommendations "  # noqa: S608
                    "WHERE session_id = ANY(%s) ORDER BY session_id, created_at, id",
                    [ids],
                )
                for values in cur:
                    vote = dict(zip(wanted, values, strict=True))
                    sources[vote.pop("session_id")].votes.append(vote)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30
    )


class RedisSource:
    """The original's Redis: `metadata:`, `events_history:` and the failed-events queues."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = _client(url)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise SourceUnavailable(f"Redis {_safe_url(url)}: {exc}") from exc
        self._oauth_emails: dict[str, str] | None = None

    def close(self) -> None:
        self.client.close()

    def count_sessions(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match="metadata:bo1_*", count=1000))

    def session_id_batches(self, size: int) -> Iterator[list[str]]:
        """Ids of the sessions that have a `metadata:` key, `size` at a time (SCAN, no KEYS)."""
        batch: list[str] = []
        for key in self.client.scan_iter(match="metadata:bo1_*", count=1000):
            batch.append(key.removeprefix("metadata:"))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def failed_events(self) -> tuple[dict[str, list[Any]], int]:
        """Events that never reached PostgreSQL, by session: (envelopes, unreadable members).

        The queue and the dead-letter queue hold only what failed, so they are read once.
        """
        found: dict[str, list[Any]] = defaultdict(list)
        unreadable = 0
        for key in ("failed_events:queue", "failed_events:dlq"):
            try:
                if self.client.type(key) != "zset":
                    continue
                members = list(self.client.zscan_iter(key, count=1000))
            except redis.ResponseError as exc:
                logger.warning("Skipped %s: %s", key, exc)
                continue
            for member, _score in members:
                try:
                    item = orjson.loads(member)
                    envelope = item.get("event_data") or item
                    sid = envelope.get("session_id") or item.get("session_id")
                except (orjson.JSONDecodeError, AttributeError):
                    unreadable += 1
                    logger.warning("Skipped an unreadable member of %s", key)
                    continue
                if isinstance(sid, str):
                    found[sid].append(envelope)
        return dict(found), unreadable

    def fill(self, sources: dict[str, SessionSource]) -> None:
        """Add each session's metadata and event history: one pipelined round trip per batch."""
        ids = list(sources)
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.get(f"metadata:{sid}")
            pipe.lrange(f"events_history:{sid}", 0, -1)
        replies = pipe.execute(raise_on_error=False)
        for index, sid in enumerate(ids):
            meta, history = replies[2 * index], replies[2 * index + 1]
            source = sources[sid]
            if isinstance(meta, Exception):
                source.redis_error = f"metadata:{sid} cannot be read: {meta}"
            else:
                source.meta_raw = meta
            if isinstance(history, Exception):
                source.redis_error = f"events_history:{sid} cannot be read: {history}"
            else:
                source.history_raw = history or []

    def oauth_emails(self) -> dict[str, str]:
        """User id → email from the original's OAuth sessions (`session:<token>`, not bo1_*).

        Read only when PostgreSQL cannot name a session's user.
        """
        if self._oauth_emails is None:
            emails: dict[str, str] = {}
            keys = (
                k
                for k in self.client.scan_iter(match="session:*", count=1000)
                if not k.startswith("session:bo1_")
            )
            for key in keys:
                try:
                    value = orjson.loads(self.client.get(key) or "null")
                except (orjson.JSONDecodeError, redis.ResponseError):
                    continue
                if isinstance(value, dict) and value.get("user_id") and value.get("email"):
                    emails[str(value["user_id"])] = str(value["email"])
            self._oauth_emails = emails
        return self._oauth_emails


def read_events(source: SessionSource, queued: list[Any]) -> tuple[list[SourceEvent], ...]:
    """The session's events from each store, parsed; an unreadable one breaks the record."""
    pg = []
    for event_type, sequence, data, created_at in source.pg_events:
        event = source_event(data, fallback_type=event_type, fallback_time=created_at)
        if event.sequence is None:
            event.sequence = sequence
        pg.append(event)
    history = []
    for raw in source.history_raw:
        try:
            envelope = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BrokenRecord(
                f"events_history has an entry that is not valid JSON: {exc}"
            ) from None
        history.append(source_event(envelope))
    failed = [source_event(envelope) for envelope in queued]
    return pg, history, failed


def read_metadata(source: SessionSource) -> dict[str, Any] | None:
    if source.redis_error:
        raise BrokenRecord(source.redis_error)
    if source.meta_raw is None:
        return None
    try:
        meta = orjson.loads(source.meta_raw)
    except orjson.JSONDecodeError as exc:
        raise BrokenRecord(f"metadata:{source.id} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BrokenRecord(f"metadata:{source.id} is a JSON {type(meta).__name__}, not an object")
    return meta
