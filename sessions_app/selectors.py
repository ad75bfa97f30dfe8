"""Reads from the session store: Redis when it has the answer, PostgreSQL always behind it."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet, Sum

from bo1site.db.prepared import Param, PreparedQuery

from .cache import SessionCache
from .cursors import InvalidCursor, Position, cursor_decode, cursor_encode, filter_fingerprint
from .models import DeliberationSession, SessionCount, SessionCountChange, SessionEvent, Status
from .search import search_headline, search_is_empty, search_query, search_rank, snippet_html
from .services import event_payload
from .snapshots import LIST_FIELDS, merge_live, session_snapshot, session_summary

logger = logging.getLogger(__name__)


class InvalidListQuery(ValueError):
    """A list request that cannot be answered as asked: `field` says which parameter is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class SessionPage:
    sessions: list[dict[str, Any]]
    total: int
    limit: int
    offset: int | None  # None when the page was reached by cursor
    has_more: bool
    next_cursor: str | None = None

    @property
    def next_offset(self) -> int | None:
        if self.offset is None or not self.has_more:
            return None
        return self.offset + len(self.sessions)


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
    q: str | None = None,
    cursor: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 20,
    offset: int = 0,
) -> SessionPage:
    """A page of the user's sessions: newest first, or by relevance then newest with `q`.

    One page query, one count, one MGET. `cursor` (a page's next_cursor) continues by keyset;
    it must come from a list with the same filter. Raises InvalidListQuery for a cursor that
    is not, and for a `q` that holds no search term.
    """
    fingerprint = filter_fingerprint(
        user=user.pk, status=status, q=q, after=created_after, before=created_before
    )
    position = None
    if cursor:
        try:
            position = cursor_decode(cursor, fingerprint=fingerprint, ranked=bool(q))
        except InvalidCursor as exc:
            raise InvalidListQuery("cursor", str(exc)) from exc
    rows: list[Any]
    extra: list[tuple[float | None, str | None]]
    if q or position or created_after or created_before:
        rows, extra, total = _filtered_page(
            user, status, q, position, created_after, created_before, limit, offset
        )
        if q and total == 0 and search_is_empty(q):
            raise InvalidListQuery(
                "q", "This search holds no word to look for (only stop words or punctuation)."
            )
    else:
        values = {"user_id": user.pk, "status": status, "limit": limit + 1, "offset": offset}
        rows = LIST_PAGE[bool(status)].fetch(**values)
        extra = [(None, None)] * len(rows)
        total = sum(LIST_TOTAL[bool(status)].fetch(**values)) if rows or offset else 0
    has_more = len(rows) > limit
    rows, extra = rows[:limit], extra[:limit]
    next_cursor = None
    if has_more:
        last = dict(zip(LIST_FIELDS, rows[-1], strict=True))
        next_cursor = cursor_encode(
            Position(last["created_at"], last["id"], extra[-1][0] if q else None),
            fingerprint=fingerprint,
        )
    summaries = [session_summary(row) for row in rows]
    if q:
        for summary, (_, headline) in zip(summaries, extra, strict=True):
            summary["snippet"] = snippet_html(headline)
    hot = SessionCache.get_many(summary["id"] for summary in summaries)
    sessions = [merge_live(summary, hot.get(summary["id"])) for summary in summaries]
    logger.info("Loaded %d sessions from PostgreSQL for user %s", len(sessions), user.pk)
    return SessionPage(
        sessions=sessions,
        total=total,
        limit=limit,
        offset=None if position else offset,
        has_more=has_more,
        next_cursor=next_cursor,
    )


def _filtered_page(
    user: User,
    status: str | None,
    q: str | None,
    position: Position | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], list[tuple[float | None, str | None]], int]:
    """The rows (values of LIST_FIELDS), their (rank, headline) and the exact total of a list
    with a search, a date range or a cursor."""
    matching = sessions_visible_to(user)
    if status:
        matching = matching.filter(status=status)
    if created_after:
        matching = matching.filter(created_at__gt=created_after)
    if created_before:
        matching = matching.filter(created_at__lt=created_before)
    order = ["-created_at", "-id"]
    page = matching
    if q:
        query = search_query(q)
        # served by the GIN index sessions_user_search on (user_id, search_vector)
        matching = matching.filter(search_vector=query)
        page = matching.annotate(rank=search_rank(query))
        order = ["-rank", *order]
    if position is not None:
        page = page.filter(_after(position))
        offset = 0
    if q:
        # The snippet is computed for the page's rows only: PostgreSQL evaluates a costly
        # output column after the sort and the limit.
        page = page.annotate(headline=search_headline(query))
        fetched = list(
            page.order_by(*order).values_list(*LIST_FIELDS, "rank", "headline")[
                offset : offset + limit + 1
            ]
        )
        rows = [row[: len(LIST_FIELDS)] for row in fetched]
        extra = [(row[-2], row[-1]) for row in fetched]
    else:
        rows = list(page.order_by(*order).values_list(*LIST_FIELDS)[offset : offset + limit + 1])
        extra = [(None, None)] * len(rows)
    total = matching.count() if rows or offset or position else 0
    return rows, extra, total


def _after(position: Position) -> Q:
    """Rows that come after `position` in the list's order (descending).

    `created_at <= c` comes first, on its own, so it bounds the index scan; the rest picks out,
    among rows of the same instant, those after the last id.
    """
    same_instant = Q(created_at=position.created_at, id__lt=position.id)
    after = Q(created_at__lte=position.created_at) & (
        Q(created_at__lt=position.created_at) | same_instant
    )
    if position.rank is None:
        return after
    # In a search: a lower rank, or the same rank and later in time order.
    return Q(rank__lt=position.rank) | (Q(rank=position.rank) & after)


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
