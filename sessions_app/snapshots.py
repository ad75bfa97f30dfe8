"""The JSON shape of a session, shared by the Redis hot entry and the API."""

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from .models import DeliberationSession

# The fields a hot entry may carry more recently than the row it was read with.
LIVE_FIELDS = (
    "status",
    "phase",
    "round_number",
    "total_cost",
    "total_tokens",
    "contributions",
    "pause_reason",
    "last_activity_at",
    "pending_clarification",
    "updated_at",
)
PROBLEM_PREVIEW_CHARS = 200


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(value: Any) -> str:
    # Six places always, so a new session's "0" and a reloaded "0.000000" read the same.
    return format(Decimal(value), ".6f")


def _preview(text: str) -> str:
    return text[:PROBLEM_PREVIEW_CHARS]


def _or_none(value: Any) -> Any:
    return value or None


# One row of the list: (key in the API, the model field it shows, how it is shown; None: as it
# is). The list's query reads exactly these fields, so a new column of the list is one line here.
LIST_COLUMNS: tuple[tuple[str, str, Callable[[Any], Any] | None], ...] = (
    ("id", "id", None),
    ("problem_statement", "problem_statement", _preview),
    ("status", "status", None),
    ("phase", "phase", None),
    ("round_number", "round_number", None),
    ("total_cost", "total_cost", _money),
    ("total_tokens", "total_tokens", None),
    ("contributions", "contribution_count", None),
    ("pause_reason", "pause_reason", _or_none),
    ("final_recommendation", "final_recommendation", _or_none),
    ("created_at", "created_at", _iso),
    ("updated_at", "updated_at", _iso),
    ("started_at", "started_at", _iso),
    ("completed_at", "completed_at", _iso),
    ("last_activity_at", "last_activity_at", _iso),
)
LIST_FIELDS = tuple(field for _, field, _ in LIST_COLUMNS)
_LIST_KEYS = tuple(key for key, _, _ in LIST_COLUMNS)
_LIST_SHOWN = tuple((key, show) for key, _, show in LIST_COLUMNS if show is not None)


def session_summary(row: Sequence[Any]) -> dict[str, Any]:
    """One row of the list from the values of LIST_FIELDS, in order (built for every row shown,
    so the columns shown as they are go through no Python code at all)."""
    summary = dict(zip(_LIST_KEYS, row, strict=True))
    for key, show in _LIST_SHOWN:
        summary[key] = show(summary[key])
    return summary


def session_snapshot(session: DeliberationSession) -> dict[str, Any]:
    """Everything the detail view shows: the hot entry in Redis is exactly this."""
    return {
        "id": session.id,
        "user_id": session.user_id,
        "problem_statement": session.problem_statement,
        "problem_context": session.problem_context,
        "max_rounds": session.max_rounds,
        "status": session.status,
        "phase": session.phase,
        "round_number": session.round_number,
        "pause_reason": session.pause_reason or None,
        "pending_clarification": session.clarification_question or None,
        "personas": session.personas,
        "contributions": session.contribution_count,
        "event_count": session.last_sequence,
        "total_cost": _money(session.total_cost),
        "total_tokens": session.total_tokens,
        "costs_by_phase": session.costs_by_phase,
        "synthesis": session.synthesis_text or None,
        "final_recommendation": session.final_recommendation or None,
        "error": session.error,
        "created_at": _iso(session.created_at),
        "updated_at": _iso(session.updated_at),
        "status_changed_at": _iso(session.status_changed_at),
        "started_at": _iso(session.started_at),
        "completed_at": _iso(session.completed_at),
        "last_activity_at": _iso(session.last_activity_at),
    }


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def merge_live(row: dict[str, Any], hot: dict[str, Any] | None) -> dict[str, Any]:
    """Overlay a hot entry's live fields on a row read from PostgreSQL, when the entry is newer."""
    if not hot:
        return row
    hot_at, row_at = _parse(hot.get("updated_at")), _parse(row.get("updated_at"))
    if hot_at is None or row_at is None or hot_at <= row_at:
        return row
    for field in LIVE_FIELDS:
        if field in row and field in hot:
            row[field] = hot[field]
    return row
