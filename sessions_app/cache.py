"""The Redis side of the store: hot session entries and per-session event streams.

`SessionCache` is the one writer of a session's hot entry and of its stream: creation, the
status signal, each deliberation step, the worker's live progress while PostgreSQL lags, the
detail's refill, reconcile and the admin all go through it. Key names come from redis_keys.
Every Redis error is logged and swallowed: PostgreSQL is the source of truth and answers
whenever Redis cannot.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError, WatchError

from bo1site.serving import jsoncodec

from .models import DeliberationSession
from .redis_keys import (
    entry_key,
    job_claim_key,
    raw_entry_key,
    raw_entry_keys,
    session_id_from_raw_entry_key,
    session_key_names,
    session_keys_pattern,
    stream_key,
)
from .snapshots import session_snapshot

logger = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, ConnectionInterrupted, OSError)

# Streams keep the recent tail only; the full transcript lives in PostgreSQL.
STREAM_MAXLEN = 2000
# An atomic update of the entry retries this often when another writer got in between.
UPDATE_ATTEMPTS = 5

__all__ = ["REDIS_ERRORS", "SessionCache", "entry_key", "redis_client", "stream_key"]


def claim_job(job: str, seconds: int) -> bool:
    """True for exactly one caller per `seconds` across all workers (False when Redis is away)."""
    try:
        return bool(redis_client().set(job_claim_key(job), "1", nx=True, ex=max(seconds, 1)))
    except REDIS_ERRORS as exc:
        logger.warning("Cannot claim the periodic job %s: %s", job, exc)
        return False


def redis_client() -> Any:
    """The raw redis-py client behind the cache, for streams, leases, outboxes and limits."""
    return get_redis_connection("default")


class SessionCache:
    """Hot, expiring entries and event streams; a miss or an error means "ask PostgreSQL"."""

    @staticmethod
    def ttl_seconds() -> int:
        return int(settings.SESSION_CACHE_TTL)

    # -- reads ---------------------------------------------------------------------------------
    @classmethod
    def get(cls, session_id: str) -> dict[str, Any] | None:
        # django-redis swallows and logs connection errors (IGNORE_EXCEPTIONS), returning None.
        value = cache.get(entry_key(session_id))
        return value if isinstance(value, dict) else None

    @classmethod
    def get_many(cls, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """One MGET for a whole page of sessions.

        The list reads this on every request, so it goes to the raw client and decodes the
        entries itself rather than key by key through the cache backend.
        """
        ids = list(session_ids)
        if not ids:
            return {}
        try:
            values = redis_client().mget(raw_entry_keys(ids))
        except REDIS_ERRORS as exc:
            logger.warning("Redis read skipped for %d sessions: %s", len(ids), exc)
            return {}
        found = {}
        for session_id, value in zip(ids, values, strict=True):
            if value is None:
                continue
            try:
                entry = jsoncodec.loads(value)
            except ValueError:
                logger.warning("Unreadable hot entry for session %s ignored", session_id)
                continue
            if isinstance(entry, dict):
                found[session_id] = entry
        return found

    @classmethod
    def ttl(cls, session_id: str) -> int | None:
        """Seconds left on the hot entry; None when there is none (or Redis is down)."""
        # django-redis does not turn errors from TTL into ignorable ones: catch them here.
        try:
            remaining = cache.ttl(entry_key(session_id))  # type: ignore[attr-defined]
        except REDIS_ERRORS as exc:
            logger.warning("Redis TTL lookup failed for session %s: %s", session_id, exc)
            return None
        return remaining if remaining and remaining > 0 else None

    @classmethod
    def keys_for(cls, session_id: str) -> list[str]:
        """Every raw Redis key that belongs to a session."""
        try:
            client = redis_client()
            return sorted(
                k.decode() for k in client.scan_iter(match=session_keys_pattern(session_id))
            )
        except REDIS_ERRORS as exc:
            logger.warning("Redis scan failed for session %s: %s", session_id, exc)
            return []

    @classmethod
    def hot_session_ids(cls) -> list[str]:
        """The ids of every session with a hot entry (a SCAN: for repairs, not for requests)."""
        try:
            keys = redis_client().scan_iter(match=raw_entry_key("*"), count=1000)
            return [session_id_from_raw_entry_key(k.decode()) for k in keys]
        except REDIS_ERRORS as exc:
            logger.warning("Redis scan of hot entries failed: %s", exc)
            return []

    @classmethod
    def count_keys(cls, session_ids: Iterable[str]) -> int | None:
        """How many keys these sessions have (what purge_many would delete), by name; None when
        Redis could not be reached."""
        return cls._on_keys_of(session_ids, "exists", "Redis keys not counted")

    @classmethod
    def purge_many(cls, session_ids: Iterable[str]) -> int | None:
        """Delete every key of these sessions in one round trip, by name (no scan).

        Returns how many keys went, or None when Redis could not be reached (the keys then
        expire by their TTL, and reconcile drops hot entries whose session is gone).
        """
        return cls._on_keys_of(session_ids, "unlink", "Redis purge skipped")

    @staticmethod
    def _on_keys_of(session_ids: Iterable[str], command: str, failed: str) -> int | None:
        """One multi-key command (EXISTS, UNLINK) on every key these sessions may have."""
        names = [name for session_id in session_ids for name in session_key_names(session_id)]
        if not names:
            return 0
        try:
            return int(getattr(redis_client(), command)(*names))
        except REDIS_ERRORS as exc:
            logger.warning("%s for %d keys: %s", failed, len(names), exc)
            return None

    # -- writes --------------------------------------------------------------------------------
    @classmethod
    def set(cls, session_id: str, snapshot: dict[str, Any]) -> bool:
        """Write the whole entry (a snapshot of the committed row); False when Redis is away."""
        # cache.set answers None when django-redis swallowed (and logged) an error.
        stored = bool(
            cache.set(entry_key(session_id), snapshot, timeout=cls.ttl_seconds())  # type: ignore[func-returns-value]
        )
        if not stored:
            logger.warning("Redis write skipped for session %s", session_id)
        return stored

    @classmethod
    def add(cls, session_id: str, snapshot: dict[str, Any]) -> bool:
        """Write the entry only when there is none, so a refill never overwrites a fresher one."""
        return bool(cache.add(entry_key(session_id), snapshot, timeout=cls.ttl_seconds()))

    @classmethod
    def refresh(cls, session_id: str) -> dict[str, Any] | None:
        """Rewrite the entry from the row as PostgreSQL has it now; returns what was written.

        A session PostgreSQL no longer has loses its keys instead.
        """
        session = DeliberationSession.objects.filter(pk=session_id).first()
        if session is None:
            cls.delete(session_id)
            return None
        snapshot = session_snapshot(session)
        cls.set(session_id, snapshot)
        return snapshot

    @classmethod
    def update_live(cls, session_id: str, fields: Mapping[str, Any]) -> bool:
        """Overlay `fields` on the entry, atomically; nothing when there is no entry.

        WATCH makes the write conditional on nobody having written the entry since it was read
        (a status change, say): if somebody did, the overlay is applied to their entry instead.
        """
        key = raw_entry_key(session_id)
        codec = caches["default"].client  # type: ignore[attr-defined]
        try:
            with redis_client().pipeline(transaction=True) as pipe:
                for _ in range(UPDATE_ATTEMPTS):
                    try:
                        pipe.watch(key)
                        raw = pipe.get(key)
                        entry = codec.decode(raw) if raw is not None else None
                        if not isinstance(entry, dict):
                            pipe.unwatch()
                            return False
                        entry.update(fields)
                        pipe.multi()
                        pipe.set(key, codec.encode(entry), ex=cls.ttl_seconds())
                        pipe.execute()
                        return True
                    except WatchError:
                        continue
        except REDIS_ERRORS as exc:
            logger.warning("Redis live update skipped for session %s: %s", session_id, exc)
            return False
        logger.warning("Redis live update for session %s gave way to other writers", session_id)
        return False

    @classmethod
    def append_events(
        cls,
        session_id: str,
        events: Iterable[dict[str, Any]],
        entry: dict[str, Any] | None = None,
    ) -> None:
        """Add events to the session's stream and, given `entry`, rewrite the entry after them.

        Both go in one pipeline: a deliberation step costs one Redis round trip, not two.
        """
        events = list(events)
        if not events and entry is None:
            return
        key = stream_key(session_id)
        try:
            pipe = redis_client().pipeline(transaction=False)
            for event in events:
                pipe.xadd(
                    key,
                    {"sequence": event["sequence"], "event": jsoncodec.dumps(event)},
                    id=f"{event['sequence']}-0",
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            if events:
                pipe.expire(key, cls.ttl_seconds())
            if entry is not None:
                pipe.set(
                    raw_entry_key(session_id),
                    caches["default"].client.encode(entry),  # type: ignore[attr-defined]
                    ex=cls.ttl_seconds(),
                )
            replies: list[Any] = pipe.execute(raise_on_error=False)
        except REDIS_ERRORS as exc:
            stream_error = exc if events else None
            entry_error = exc if entry is not None else None
        else:
            entry_reply = replies.pop() if entry is not None else None
            stream_error = next((r for r in replies if isinstance(r, Exception)), None)
            entry_error = entry_reply if isinstance(entry_reply, Exception) else None
        if stream_error is not None:
            logger.warning(
                "Redis stream write skipped for session %s: %s", session_id, stream_error
            )
        if entry_error is not None:
            logger.warning("Redis write skipped for session %s", session_id)

    @classmethod
    def delete(cls, session_id: str) -> None:
        """Drop the entry and the stream (the session is gone from PostgreSQL)."""
        cache.delete(entry_key(session_id))
        try:
            redis_client().delete(stream_key(session_id))
        except REDIS_ERRORS as exc:
            logger.warning("Redis delete skipped for session %s: %s", session_id, exc)

    @classmethod
    def purge(cls, session_id: str) -> int:
        """Delete every Redis key of a session; returns how many went."""
        keys = cls.keys_for(session_id)
        if not keys:
            return 0
        try:
            return int(redis_client().delete(*keys))
        except REDIS_ERRORS as exc:
            logger.warning("Redis purge failed for session %s: %s", session_id, exc)
            return 0
