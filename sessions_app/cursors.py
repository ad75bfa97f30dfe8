"""Opaque, signed cursors for the session list's keyset pagination.

A cursor carries the sort key of the last session of a page: (created_at, id), and the rank
first when the list is a search. It is signed with the filter it was made for, so a cursor that
was edited, or that belongs to another user, status, search or date range, is refused.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing

SALT = "bo1site.sessions.list-cursor"
_SIGNER = signing.Signer(salt=SALT)


class InvalidCursor(ValueError):
    """The cursor was not made by this service for this very filter."""


@dataclass(frozen=True)
class Position:
    """Where a page ended, in the list's own order."""

    created_at: datetime
    id: str
    rank: float | None = None  # set in a search, which orders by relevance first


def filter_fingerprint(**filters: Any) -> str:
    """A short digest of everything that decides which sessions a list holds, in which order."""
    text = "\x1f".join(f"{name}={filters[name]!s}" for name in sorted(filters))
    return hashlib.blake2s(text.encode(), digest_size=12).hexdigest()


def cursor_encode(position: Position, *, fingerprint: str) -> str:
    key: list[Any] = [position.created_at.isoformat(), position.id]
    if position.rank is not None:
        key.append(position.rank)
    # Signed, not timestamped or compressed: every page makes one, and a cursor does not expire.
    return _SIGNER.sign_object({"f": fingerprint, "k": key})


def cursor_decode(cursor: str, *, fingerprint: str, ranked: bool) -> Position:
    try:
        payload = _SIGNER.unsign_object(cursor)
    except signing.BadSignature as exc:
        raise InvalidCursor("This cursor is not valid: use next_cursor as it was given.") from exc
    if not isinstance(payload, dict) or payload.get("f") != fingerprint:
        raise InvalidCursor("This cursor belongs to another filter: start again without it.")
    key = payload.get("k")
    try:
        if not isinstance(key, list):
            raise TypeError("the key is not a list")
        created_at, session_id, *rank = key
        position = Position(
            created_at=datetime.fromisoformat(created_at),
            id=str(session_id),
            rank=float(rank[0]) if rank else None,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidCursor("This cursor is not valid: use next_cursor as it was given.") from exc
    if (position.rank is not None) != ranked:
        raise InvalidCursor("This cursor belongs to another filter: start again without it.")
    return position
