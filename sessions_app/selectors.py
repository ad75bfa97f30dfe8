"""Reads from the session store: Redis when it has the answer, PostgreSQL always behind it."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet, Sum

from bo1site.db.prepared import Param, PreparedQuery

from .cache import SessionCache
from .models import DeliberationSession, SessionCount, SessionCountChange, SessionEvent, Status
from .services import event_payload
from .snapshots import LIST_FIELDS, merge_live, session_snapshot, session_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionPage:
    sessions: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.sessions) < self.total

    @property
    def next_offset(self) -> int | None:
        return self.offset + len(self.sessions) if self.has_more else None


def sessions_visible_to(user: User) -> QuerySet[DeliberationSession]:
    """A user's sessions, soft-deleted ones hidden."""
    return DeliberationSession.objects.filter(user=user).exclude(status=Status.DELETED)


def _list_page(user_id: Any, status: Any = None) -> QuerySet[DeliberationSession, Any]:
    """The list's rows, newest first: the values of LIST_FIELDS (see snapshots.LIST_COLUMNS)."""
    # served by the partial index sessions_user_recent (user, -created_at, -id; not deleted)
    rows = DeliberationSession.objects.filter(user_id=user_id).exclude(status=Status.DELETED)
    if status is not None:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at", "-id").values_list(*LIST_FIELDS)


def _list_total(user_id: Any, status: Any = None) -> QuerySet[Any, Any]:
    """The exact number of the list's rows: the per-status counters plus the per-connection
    changes the trigger kept since the last fold (one query; at most two rows to add up)."""
    parts = []
    for model, column in ((SessionCount, "count"), (SessionCountChange, "delta")):
        rows = model.objects.filter(user_id=user_id).exclude(status=Status.DELETED)
        if status is not None:
            rows = rows.filter(status=status)
        parts.append(
            rows.values("user_id").annotate(total=Sum(column)).values_list("total", flat=True)
        )
    return parts[0].union(parts[1], all=True)


# The same two queries, compiled once (bo1site/db/prepared.py), with and without the status
# filter. The page is never prepared on the server: its best plan depends on the user and offset.
LIST_PAGE = {
    False: PreparedQuery(
        "bo1_list_page", lambda: _list_page(Param("user_id")), paginated=True, prepare=False
    ),
    True: PreparedQuery(
        "bo1_list_page_by_status",
        lambda: _list_page(Param("user_id"), Param("status")),
        paginated=True,
        prepare=False,
    ),
}
LIST_TOTAL = {
    False: PreparedQuery("bo1_list_count", lambda: _list_total(Param("user_id"))),
    True: PreparedQuery(
        "bo1_list_count_by_status", lambda: _list_total(Param("user_id"), Param("status"))
    ),
}


def session_list_for_user(
    *,
    user: User,
    status: str | None = None,
    search: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> SessionPage:
    """A page of the user's sessions, newest first: one page query, one count, one MGET."""
    rows: list[Any]
    if search:
        # served by the trigram index on UPPER(problem_statement); the counters know no words
        matching = _list_page(user.pk, status or None).filter(problem_statement__icontains=search)
        rows = list(matching[offset : offset + limit])
        total = matching.count() if rows or offset else 0
    else:
        values = {"user_id": user.pk, "status": status, "limit": limit, "offset": offset}
        rows = LIST_PAGE[bool(status)].fetch(**values)
        total = sum(LIST_TOTAL[bool(status)].fetch(**values)) if rows or offset else 0
    summaries = [session_summary(row) for row in rows]
    hot = SessionCache.get_many(summary["id"] for summary in summaries)
    sessions = [merge_live(summary, hot.get(summary["id"])) for summary in summaries]
    logger.info("Loaded %d sessions from PostgreSQL for user %s", len(sessions), user.pk)
    return SessionPage(sessions=sessions, total=total, limit=limit, offset=offset)


def session_counts_for_user(*, user: User) -> dict[str, int]:
    """How many sessions the user has in each status (deleted ones too), as the list counts."""
    counts: dict[str, int] = {}
    for model, column in ((SessionCount, "count"), (SessionCountChange, "delta")):
        rows = model.objects.filter(user=user).values("status").annotate(n=Sum(column))
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + int(row["n"])
    return {status: n for status, n in counts.items() if n}


def session_detail_for_user(*, user: User, session_id: str) -> dict[str, Any] | None:
    """A session's detail: the hot entry when Redis has it, else PostgreSQL (refilling Redis)."""
    hot = SessionCache.get(session_id)
    if hot is not None:
        if hot.get("user_id") != user.pk or hot.get("status") == Status.DELETED:
            return None
        return hot
    session = sessions_visible_to(user).filter(pk=session_id).first()
    if session is None:
        return None
    snapshot = session_snapshot(session)
    # `add`, not `set`: a status change that committed after our read has already written a
    # fresher entry, and this stale copy must not replace it.
    SessionCache.add(session_id, snapshot)
    return snapshot


def session_get_for_user(*, user: User, session_id: str) -> DeliberationSession | None:
    """The session row itself, when it is this user's and not deleted."""
    return sessions_visible_to(user).filter(pk=session_id).first()


def session_events_after(
    *, session_id: str, after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """A page of a session's transcript, in sequence order."""
    events = SessionEvent.objects.filter(session_id=session_id, sequence__gt=after).order_by(
        "sequence"
    )[:limit]
    return [event_payload(e) for e in events]


def session_events_all(*, session_id: str, page_size: int = 1000) -> Iterator[dict[str, Any]]:
    """A session's whole transcript, read page by page so a long one never loads in one query."""
    after = 0
    while True:
        page = session_events_after(session_id=session_id, after=after, limit=page_size)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1]["sequence"]
