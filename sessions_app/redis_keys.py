"""The name of every Redis key the project writes, built here and nowhere else.

Every key that belongs to a session has the session id in its name and expires. The hot entry is
written through Django's cache, which adds KEY_PREFIX and the version (`bo1:1:session:<id>`);
the other keys are raw keys under `bo1:`. The Celery broker has a database of its own.
"""

from collections.abc import Iterable

from django.core.cache import caches

PREFIX = "bo1"


def entry_key(session_id: str) -> str:
    """The cache key of a session's hot entry (django-redis adds its prefix and version)."""
    return f"session:{session_id}"


def raw_entry_keys(session_ids: Iterable[str]) -> list[str]:
    """The Redis keys of hot entries, as stored (for the raw client: MGET, pipelines, scans)."""
    backend = caches["default"]  # once: each lookup of a cache alias costs
    return [backend.make_key(entry_key(session_id)) for session_id in session_ids]


def raw_entry_key(session_id: str) -> str:
    return raw_entry_keys([session_id])[0]


def session_id_from_raw_entry_key(key: str) -> str:
    return key[len(raw_entry_key("")) :]


def stream_key(session_id: str) -> str:
    """A session's live event stream."""
    return f"{PREFIX}:session:{session_id}:stream"


def lease_key(session_id: str) -> str:
    """The lease of the worker running a session."""
    return f"{PREFIX}:session:{session_id}:lease"


def outbox_key(session_id: str) -> str:
    """The mirror of the writes a worker kept for a session while PostgreSQL refused them."""
    return f"{PREFIX}:session:{session_id}:outbox"


OUTBOX_PATTERN = outbox_key("*")


def session_id_from_outbox_key(key: str) -> str:
    return key.split(":")[2]


def session_keys_pattern(session_id: str) -> str:
    """A SCAN pattern matching every key of one session (entry, stream, lease, outbox)."""
    return f"{PREFIX}*{session_id}*"


def session_key_names(session_id: str) -> list[str]:
    """The raw name of every key a session may have, for a purge by name (no scan)."""
    return [
        raw_entry_key(session_id),
        stream_key(session_id),
        lease_key(session_id),
        outbox_key(session_id),
    ]


def job_claim_key(job: str) -> str:
    """Held by the worker that ran a periodic job (retention), for as long as its interval."""
    return f"{PREFIX}:job:{job}:claim"


def throttle_key(scope: str, ident: str, window: int) -> str:
    """One rate limit counter: a scope (create, start), a user or address, a time window."""
    return f"{PREFIX}:throttle:{scope}:{ident}:{window}"
