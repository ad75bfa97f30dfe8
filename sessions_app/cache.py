"""The Redis side of the store: hot session entries and per-session event streams.

Every key names its session and expires. Every Redis error is logged and swallowed: PostgreSQL
is the source of truth and answers whenever Redis cannot.
"""

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from bo1site import jsoncodec

logger = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, ConnectionInterrupted, OSError)

# Streams keep the recent tail only; the full transcript lives in PostgreSQL.
STREAM_MAXLEN = 2000


def entry_key(session_id: str) -> str:
    """The cache key (before django-redis adds its prefix) of a session's hot entry."""
    return f"session:{session_id}"


def stream_key(session_id: str) -> str:
    """The raw Redis key of a session's live event stream."""
    return f"bo1:session:{session_id}:stream"


def session_key_names(session_id: str) -> list[str]:
    """The raw name of every key a session may have: hot entry, stream, worker lease, outbox."""
    return [
        caches["default"].make_key(entry_key(session_id)),
        stream_key(session_id),
        f"bo1:session:{session_id}:lease",
        f"bo1:session:{session_id}:outbox",
    ]


def job_claim_key(job: str) -> str:
    """Held by the worker that ran a periodic job, for as long as the job's interval."""
    return f"bo1:job:{job}:claim"


def claim_job(job: str, seconds: int) -> bool:
    """True for exactly one caller per `seconds` across all workers (False when Redis is away)."""
    try:
        return bool(redis_client().set(job_claim_key(job), "1", nx=True, ex=max(seconds, 1)))
    except REDIS_ERRORS as exc:
        logger.warning("Cannot claim the periodic job %s: %s", job, exc)
        return False


def redis_client() -> Any:
    """The raw redis-py client behind the cache, for streams and leases."""
    return get_redis_connection("default")


class SessionCache:
    """Hot, expiring session entries; a miss or an error means "ask PostgreSQL"."""

    @staticmethod
    def ttl_seconds() -> int:
        return int(settings.SESSION_CACHE_TTL)

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
        backend = caches["default"]  # once: each `cache.` attribute is a lookup of its own
        try:
            values = redis_client().mget([backend.make_key(entry_key(i)) for i in ids])
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
    def set(cls, session_id: str, snapshot: dict[str, Any]) -> bool:
        # cache.set answers None when django-redis swallowed (and logged) an error.
        stored = bool(
            cache.set(entry_key(session_id), snapshot, timeout=cls.ttl_seconds())  # type: ignore[func-returns-value]
        )
        if not stored:
            logger.warning("Redis write skipped for session %s", session_id)
        return stored

    @classmethod
    def queue_set(cls, pipe: Any, session_id: str, snapshot: dict[str, Any]) -> None:
        """Add `set` of the entry to a raw redis-py pipeline: the same key, bytes and TTL."""
        backend = caches["default"]
        pipe.set(
            backend.make_key(entry_key(session_id)),
            backend.client.encode(snapshot),  # type: ignore[attr-defined]
            ex=cls.ttl_seconds(),
        )

    @classmethod
    def add(cls, session_id: str, snapshot: dict[str, Any]) -> bool:
        """Write the entry only when there is none, so a refill never overwrites a fresher one."""
        return bool(cache.add(entry_key(session_id), snapshot, timeout=cls.ttl_seconds()))

    @classmethod
    def delete(cls, session_id: str) -> None:
        cache.delete(entry_key(session_id))
        try:
            redis_client().delete(stream_key(session_id))
        except REDIS_ERRORS as exc:
            logger.warning("Redis delete skipped for session %s: %s", session_id, exc)

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
            return sorted(k.decode() for k in client.scan_iter(match=f"bo1*{session_id}*"))
        except REDIS_ERRORS as exc:
            logger.warning("Redis scan failed for session %s: %s", session_id, exc)
            return []

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

    @classmethod
    def purge_many(cls, session_ids: Iterable[str]) -> int | None:
        """Delete every key of these sessions in one round trip, by name (no scan).

        Returns how many keys went, or None when Redis could not be reached (the keys then
        expire by their TTL, and reconcile drops hot entries whose session is gone).
        """
        names = [name for session_id in session_ids for name in session_key_names(session_id)]
        if not names:
            return 0
        try:
            return int(redis_client().unlink(*names))
        except REDIS_ERRORS as exc:
            logger.warning("Redis purge skipped for %d keys: %s", len(names), exc)
            return None


class EventStream:
    """A session's live event stream: what the SSE endpoint follows."""

    @staticmethod
    def append(
        session_id: str, events: Iterable[dict[str, Any]], entry: dict[str, Any] | None = None
    ) -> None:
        """Add events to the stream and, given `entry`, rewrite the hot entry after them.

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
                pipe.expire(key, int(settings.SESSION_CACHE_TTL))
            if entry is not None:
                SessionCache.queue_set(pipe, session_id, entry)
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
