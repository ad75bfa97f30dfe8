"""The JSON shape of a session, shared by the Redis hot entry and the API."""

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
COST_QUANTUM = Decimal("0.000001")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(value: Any) -> str:
    # Six places always, so a new session's "0" and a reloaded "0.000000" read the same.
    return str(Decimal(value).quantize(COST_QUANTUM))


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


def session_summary(session: DeliberationSession) -> dict[str, Any]:
    """One row of the dashboard list (built for every row of every page, so kept lean)."""
    created, updated = session.created_at, session.updated_at
    started, completed = session.started_at, session.completed_at
    active = session.last_activity_at
    return {
        "id": session.id,
        "problem_statement": session.problem_statement[:PROBLEM_PREVIEW_CHARS],
        "status": session.status,
        "phase": session.phase,
        "round_number": session.round_number,
        "total_cost": _money(session.total_cost),
        "total_tokens": session.total_tokens,
        "contributions": session.contribution_count,
        "pause_reason": session.pause_reason or None,
        "final_recommendation": session.final_recommendation or None,
        "created_at": created.isoformat() if created else None,
        "updated_at": updated.isoformat() if updated else None,
        "started_at": started.isoformat() if started else None,
        "completed_at": completed.isoformat() if completed else None,
        "last_activity_at": active.isoformat() if active else None,
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
