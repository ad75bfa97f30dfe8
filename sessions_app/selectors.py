"""Reads from the session store: Redis when it has the answer, PostgreSQL always behind it."""

import logging
from collections import namedtuple
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q, QuerySet

from bo1site.db.prepared import execute_prepared

from .cache import SessionCache
from .cursors import InvalidCursor, Position, cursor_decode, cursor_encode, filter_fingerprint
from .models import DeliberationSession, SessionCount, SessionEvent, Status
from .search import search_headline, search_is_empty, search_query, search_rank, snippet_html
from .services import event_payload
from .snapshots import merge_live, session_snapshot, session_summary

logger = logging.getLogger(__name__)

LIST_FIELDS = (
    "id",
    "user_id",
    "problem_statement",
    "status",
    "phase",
    "round_number",
    "total_cost",
    "total_tokens",
    "contribution_count",
    "pause_reason",
    "final_recommendation",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "last_activity_at",
)


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
    rows: list[Any]
    fingerprint = filter_fingerprint(
        user=user.pk, status=status, q=q, after=created_after, before=created_before
    )
    ranked = bool(q)
    position = None
    if cursor:
        try:
            position = cursor_decode(cursor, fingerprint=fingerprint, ranked=ranked)
        except InvalidCursor as exc:
            raise InvalidListQuery("cursor", str(exc)) from exc
    if q or position or created_after or created_before:
        rows, total = _filtered_page(
            user, status, q, position, created_after, created_before, limit, offset
        )
        if q and total == 0 and search_is_empty(q):
            raise InvalidListQuery(
                "q", "This search holds no word to look for (only stop words or punctuation)."
            )
    else:
        rows = _list_page(user.pk, status, limit + 1, offset)
        total = _visible_count(user.pk, status) if rows or offset else 0
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more:
        last = rows[-1]
        next_cursor = cursor_encode(
            Position(last.created_at, last.id, getattr(last, "rank", None) if ranked else None),
            fingerprint=fingerprint,
        )
    hot = SessionCache.get_many(row.id for row in rows)
    sessions = [merge_live(_summary(row), hot.get(row.id)) for row in rows]
    logger.info("Loaded %d sessions from PostgreSQL for user %s", len(sessions), user.pk)
    return SessionPage(
        sessions=sessions,
        total=total,
        limit=limit,
        offset=None if position else offset,
        has_more=has_more,
        next_cursor=next_cursor,
    )


def _summary(row: Any) -> dict[str, Any]:
    summary = session_summary(row)
    if hasattr(row, "headline"):
        summary["snippet"] = snippet_html(row.headline)
    return summary


def _filtered_page(
    user: User,
    status: str | None,
    q: str | None,
    position: Position | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """The page and the exact total of a list with a search, a date range or a cursor."""
    matching = sessions_visible_to(user)
    if status:
        matching = matching.filter(status=status)
    if created_after:
        matching = matching.filter(created_at__gt=created_after)
    if created_before:
        matching = matching.filter(created_at__lt=created_before)
    order = ["-created_at", "-id"]
    page = matching.only(*LIST_FIELDS)
    if q:
        query = search_query(q)
        # served by the GIN index sessions_user_search on (user_id, search_vector)
        matching = matching.filter(search_vector=query)
        page = matching.only(*LIST_FIELDS).annotate(rank=search_rank(query))
        order = ["-rank", *order]
    if position is not None:
        page = page.filter(_after(position))
        offset = 0
    # The snippet is computed for the page's rows only: PostgreSQL evaluates a costly output
    # column after the sort and the limit.
    if q:
        page = page.annotate(headline=search_headline(query))
    rows = list(page.order_by(*order)[offset : offset + limit + 1])
    total = matching.count() if rows or offset or position else 0
    return rows, total


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


# The list without a search runs SQL written once from the model's metadata: composing the same
# two queries through the ORM on every request costs several times the CPU PostgreSQL spends
# answering them. Rows come back as named tuples carrying the attributes session_summary reads.
ListRow = namedtuple("ListRow", LIST_FIELDS)  # type: ignore[misc]


@cache
def _list_sql(*, by_status: bool) -> dict[str, str]:
    """The page query and the count query; identifiers come from the model, values are params."""
    quote = connection.ops.quote_name
    meta = DeliberationSession._meta
    column_of = {field.attname: str(field.column) for field in meta.concrete_fields}
    columns = ", ".join(quote(column_of[name]) for name in LIST_FIELDS)
    # The predicate matches the partial index sessions_user_recent, which serves the page.
    where = f"user_id = %s AND NOT (status = '{Status.DELETED}')"
    if by_status:
        where += " AND status = %s"
    page = (
        f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {where} "  # noqa: S608
        "ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s"
    )
    # The exact total, from the per-status counters a trigger keeps (SessionCount).
    counts = quote(SessionCount._meta.db_table)
    count = f"SELECT COALESCE(SUM(count), 0) FROM {counts} WHERE {where}"  # noqa: S608
    return {"page": page, "count": count}


def _run_list_query(kind: str, user_id: Any, status: str | None, *tail: int) -> list[tuple]:
    """The list's `page` or `count` query, prepared once per connection (bo1_list_<kind>...)."""
    sql = _list_sql(by_status=bool(status))[kind]
    name = f"bo1_list_{kind}_by_status" if status else f"bo1_list_{kind}"
    with connection.cursor() as cursor:
        execute_prepared(cursor, name, sql, [user_id, *([status] if status else []), *tail])
        return cursor.fetchall()


def _list_page(user_id: Any, status: str | None, limit: int, offset: int) -> list[Any]:
    return [ListRow(*values) for values in _run_list_query("page", user_id, status, limit, offset)]


def _visible_count(user_id: Any, status: str | None) -> int:
    return int(_run_list_query("count", user_id, status)[0][0])


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
