"""Reads from the session store: Redis when it has the answer, PostgreSQL always behind it."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, F, Q, QuerySet, Sum, Window

from bo1site.serving.db.prepared import AnyOf, Param, PreparedQuery, RowBefore

from .cache import SessionCache
from .cursors import InvalidCursor, Position, cursor_decode, cursor_encode, filter_fingerprint
from .models import DeliberationSession, SessionCount, SessionCountChange, SessionEvent, Status
from .search import (
    search_headline,
    search_is_empty,
    search_owned_by,
    search_query,
    search_rank,
    snippet_html,
)
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


def _after(created_at: Any, session_id: Any, rank: Any = None) -> Q:
    """Rows that come after (created_at, id) in the list's order (descending), or after (rank,
    created_at, id) in a search's.

    The list's is one row comparison, `(created_at, id) < (c, i)`, which the index
    sessions_user_recent (user, -created_at, -id) serves as one range.
    """
    after = Q(RowBefore(F("created_at"), F("id"), created_at, session_id))
    if rank is None:
        return after
    # In a search: a lower rank, or the same rank and later in time order.
    return Q(rank__lt=rank) | (Q(rank=rank) & after)


@dataclass(frozen=True)
class _Shape:
    """Which parameters a list request has. The queries of each shape are compiled once, with
    `Param`s for the values (bo1site/serving/db/prepared.py), so a request builds no queryset."""

    status: bool = False
    created_after: bool = False
    created_before: bool = False
    cursor: bool = False
    search: bool = False

    @property
    def name(self) -> str:
        flags = [field for field, on in vars(self).items() if on]
        return "_".join(["bo1_list", *flags])


def _rows(shape: _Shape) -> QuerySet[DeliberationSession]:
    """The user's visible sessions that the shape's filters (and search) let through."""
    rows = DeliberationSession.objects.exclude(status=Status.DELETED)
    if shape.search:
        # The owner's entries in sessions_search_keys hold only the owner's rows (search.py),
        # so the owner is not filtered on again: the planner would add a scan of the user's
        # index to that of the search's. The document then decides exactly.
        query = search_query(Param("q"))
        rows = rows.filter(search_owned_by(Param("user_id"), query)).filter(search_vector=query)
    else:
        # served by the partial index sessions_user_recent (user, -created_at, -id; not deleted)
        rows = rows.filter(user_id=Param("user_id"))
    if shape.status:
        rows = rows.filter(status=Param("status"))
    if shape.created_after:
        rows = rows.filter(created_at__gt=Param("created_after"))
    if shape.created_before:
        rows = rows.filter(created_at__lt=Param("created_before"))
    return rows


def _page(shape: _Shape) -> QuerySet[Any, Any]:
    """A page: LIST_FIELDS newest first; in a search (id, rank, and on a page without a cursor
    the total, counted over every match before the sort and the limit), by relevance first."""
    rows: QuerySet[Any, Any] = _rows(shape)
    if not shape.search:
        if shape.cursor:
            rows = rows.filter(_after(Param("created_at"), Param("id")))
        return rows.order_by("-created_at", "-id").values_list(*LIST_FIELDS)
    rows = rows.annotate(rank=search_rank(search_query(Param("q"))))
    if shape.cursor:
        rows = rows.filter(_after(Param("created_at"), Param("id"), Param("rank")))
        columns: tuple[str, ...] = ("id", "rank")
    else:
        rows = rows.annotate(total=Window(Count("*")))
        columns = ("id", "rank", "total")
    return rows.order_by("-rank", "-created_at", "-id").values_list(*columns)


def _count(shape: _Shape) -> QuerySet[Any, Any]:
    """The exact number of the shape's rows, as one value (or none, for no rows)."""
    if shape.search or shape.created_after or shape.created_before:
        # Every row has the one owner: grouping by it gives the one count.
        return _rows(shape).values("user_id").annotate(n=Count("*")).values_list("n", flat=True)
    # The plain list: the per-status counters plus the per-connection changes the trigger kept
    # since the last fold (one query; at most two rows to add up).
    parts = []
    for model, column in ((SessionCount, "count"), (SessionCountChange, "delta")):
        counted = model.objects.filter(user_id=Param("user_id")).exclude(status=Status.DELETED)
        if shape.status:
            counted = counted.filter(status=Param("status"))
        parts.append(counted.values("user_id").annotate(n=Sum(column)).values_list("n", flat=True))
    return parts[0].union(parts[1], all=True)


def _search_details() -> QuerySet[Any, Any]:
    """A search page's rows by id: LIST_FIELDS and the snippet, computed for these rows only."""
    return (
        DeliberationSession.objects.filter(AnyOf(F("id"), Param("ids")), user_id=Param("user_id"))
        .annotate(headline=search_headline(search_query(Param("q"))))
        .values_list(*LIST_FIELDS, "headline")
    )


@cache
def _queries(shape: _Shape) -> tuple[PreparedQuery, PreparedQuery]:
    """The shape's page and count. A page is never prepared on the server: its best plan
    depends on the user, the offset and the words (a generic plan of the page walks the global
    created-at index and filters by user, and a user with one session waited 200 ms for it).
    The plain list's count reads a user's few counter rows, one plan for everyone: prepared."""
    counters = not (shape.search or shape.created_after or shape.created_before)
    return (
        PreparedQuery(shape.name, lambda: _page(shape), paginated=True, prepare=False),
        PreparedQuery(shape.name + "_count", lambda: _count(shape), prepare=counters),
    )


# A search page's details by primary key: one plan fits every call, so it is prepared.
SEARCH_DETAILS = PreparedQuery("bo1_search_details", _search_details)


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

    The plain list is one page query, one count (of counters) and one MGET; a search's first
    page is one query and the MGET. `cursor` (a page's next_cursor) continues by keyset;
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
    shape = _Shape(
        status=bool(status),
        created_after=created_after is not None,
        created_before=created_before is not None,
        cursor=position is not None,
        search=bool(q),
    )
    values: dict[str, Any] = {
        "user_id": user.pk,
        "status": status,
        "created_after": created_after,
        "created_before": created_before,
        "q": q,
        "limit": limit + 1,
        "offset": 0 if position else offset,
    }
    if position is not None:
        values.update(created_at=position.created_at, id=position.id, rank=position.rank)
    page_query, count_query = _queries(shape)
    rows: list[Any] = page_query.fetch(**values)
    extra: list[tuple[float | None, str | None]] = [(None, None)] * len(rows)
    if shape.search and rows and not shape.cursor:
        total = rows[0][2]  # the window count, in the page itself
    else:
        total = sum(count_query.fetch(**values)) if rows or offset or position else 0
    if shape.search:
        if total == 0 and search_is_empty(q or ""):
            raise InvalidListQuery(
                "q", "This search holds no word to look for (only stop words or punctuation)."
            )
        rows, extra = _search_rows(rows, values)
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


def _search_rows(
    page: list[Any], values: dict[str, Any]
) -> tuple[list[Any], list[tuple[float | None, str | None]]]:
    """The LIST_FIELDS of a search page's (id, rank, ...) rows, and each one's (rank, headline)."""
    if not page:
        return [], []
    details = {row[0]: row for row in SEARCH_DETAILS.fetch(**values, ids=[r[0] for r in page])}
    # A row deleted since the ranking is left out rather than shown half.
    found = [row for row in page if row[0] in details]
    return [details[r[0]][:-1] for r in found], [(r[1], details[r[0]][-1]) for r in found]


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
