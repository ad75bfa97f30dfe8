"""How one session of the original service becomes one of ours: pure functions, no I/O.

The merge rule: the original wrote every status change to Redis first (`metadata:{sid}`), so
where that key exists its live fields win; the PostgreSQL row fills in the rest. `updated_at` is
never compared: the old write-through bumps the row just after a change made in Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import orjson

from sessions_app.models import PauseReason, Phase, Status

from .events import SourceEvent
from .values import BrokenRecord, as_integer, as_number, as_text, parse_time

INTERRUPTED = "interrupted_before_import"


# The original's phases (including the old engine's) onto ours: the nearest step of our flow.
PHASES: dict[str, str] = {
    **{p: p for p in Phase.values},
    "problem_decomposition": Phase.DECOMPOSITION,
    "context_collection": Phase.INTAKE,
    "identify_gaps": Phase.DECOMPOSITION,
    "clarification_needed": Phase.DISCUSSION,
    "exploration": Phase.DISCUSSION,
    "challenge": Phase.DISCUSSION,
    "convergence": Phase.DISCUSSION,
    "recommendations": Phase.VOTING,
}

# The original's statuses onto ours; `running` (and the old default `active`) lost its worker.
STATUSES: dict[str, str] = {
    "created": Status.CREATED,
    "queued": Status.CREATED,
    "running": Status.FAILED,
    "active": Status.FAILED,
    "paused": Status.PAUSED,
    "completed": Status.COMPLETED,
    "failed": Status.FAILED,
    "killed": Status.KILLED,
    "terminated": Status.KILLED,
    "deleted": Status.DELETED,
}

# The phase an event puts a session in, for sessions whose stores name none.
EVENT_PHASES: dict[str, str] = {
    "decomposition_started": Phase.DECOMPOSITION,
    "decomposition_complete": Phase.DECOMPOSITION,
    "persona_selected": Phase.SELECTION,
    "subproblem_started": Phase.SELECTION,
    "initial_round_started": Phase.INITIAL_ROUND,
    "round_started": Phase.DISCUSSION,
    "contribution": Phase.DISCUSSION,
    "facilitator_decision": Phase.DISCUSSION,
    "clarification_required": Phase.DISCUSSION,
    "voting_started": Phase.VOTING,
    "persona_vote": Phase.VOTING,
    "synthesis_started": Phase.SYNTHESIS,
    "synthesis_complete": Phase.SYNTHESIS,
    "complete": Phase.COMPLETE,
}


@dataclass
class Merged:
    """A session ready to write: our model's fields, its events and votes."""

    id: str
    source_user_id: str
    source_status: str
    source_phase: str
    stores: str
    fields: dict[str, Any]
    events: list[SourceEvent]
    votes: list[dict[str, Any]] = field(default_factory=list)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the fields and votes: a rerun compares it with the last import's."""
        payload = {"fields": self.fields, "votes": self.votes}
        return hashlib.sha256(
            orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
        ).hexdigest()


def _live(meta: Mapping[str, Any], row: Mapping[str, Any], name: str) -> Any:
    """A live field: Redis' value when it has one, else the row's."""
    value = meta.get(name)
    return value if value not in (None, "") else row.get(name)


def _personas(events: list[SourceEvent]) -> list[dict[str, Any]]:
    personas: list[dict[str, Any]] = []
    seen: set[tuple[str, Any]] = set()
    for event in events:
        if event.event_type != "persona_selected":
            continue
        index = event.data.get("sub_problem_index")
        listed = event.data.get("personas")
        entries = listed if isinstance(listed, list) else [event.data]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            code = entry.get("persona_code") or entry.get("code")
            if not isinstance(code, str) or (code, index) in seen:
                continue
            seen.add((code, index))
            personas.append(
                {
                    "persona_code": code,
                    "persona_name": entry.get("persona_name") or entry.get("name") or code,
                    "sub_problem_index": index,
                }
            )
    return personas


def _last(events: list[SourceEvent], *types: str) -> SourceEvent | None:
    for event in reversed(events):
        if event.event_type in types:
            return event
    return None


def _clarification_question(events: list[SourceEvent]) -> str:
    event = _last(events, "clarification_required", "clarification_requested")
    if event is None:
        return ""
    if isinstance(event.data.get("question"), str):
        return event.data["question"]
    questions = event.data.get("questions") or []
    texts = [q.get("question") if isinstance(q, dict) else q for q in questions]
    return "\n".join(str(t) for t in texts if t)


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        return as_text(value.get("message") or value.get("error"), "error message")
    return as_text(value, "error")


def merge_session(
    session_id: str,
    *,
    row: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None,
    events: list[SourceEvent],
    votes: list[dict[str, Any]],
) -> Merged:
    """Our session from the original's PostgreSQL row and Redis metadata (either may be None)."""
    if row is None and meta is None:
        raise BrokenRecord("neither store has the session")
    row = row or {}
    meta = meta or {}
    if not isinstance(meta, dict):
        raise BrokenRecord(f"metadata is a {type(meta).__name__}, not an object")
    stores = "+".join(name for name, held in (("postgres", row), ("redis", meta)) if held)

    source_status = as_text(_live(meta, row, "status"), "status")
    if source_status not in STATUSES:
        raise BrokenRecord(f"unknown status {source_status!r}")
    source_phase = as_text(_live(meta, row, "phase"), "phase")
    status = STATUSES[source_status]

    problem = as_text(row.get("problem_statement") or meta.get("problem_statement"), "problem")
    if not problem.strip():
        raise BrokenRecord("no problem_statement")
    context = row.get("problem_context")
    if context is None:
        context = meta.get("problem_context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise BrokenRecord(f"problem_context is a {type(context).__name__}, not an object")

    created_at = parse_time(row.get("created_at"), "created_at") or parse_time(
        meta.get("created_at"), "created_at"
    )
    if created_at is None:
        raise BrokenRecord("no created_at")
    updates = [
        parse_time(row.get("updated_at"), "updated_at"),
        parse_time(meta.get("updated_at"), "updated_at"),
    ]
    first_event = events[0].timestamp if events else None
    last_event = events[-1].timestamp if events else None
    updated_at = max(
        [t for t in updates if t] + ([last_event] if last_event else []) or [created_at]
    )
    last_activity = parse_time(meta.get("last_activity_at"), "last_activity_at") or last_event
    started_at = parse_time(meta.get("started_at"), "started_at") or (
        first_event if status != Status.CREATED else None
    )

    # The time of the last status: the original writes `{status}_at` into the metadata.
    status_at = parse_time(meta.get(f"{source_status}_at"), f"{source_status}_at")
    if source_status == "terminated":
        status_at = status_at or parse_time(row.get("terminated_at"), "terminated_at")
    if source_status == "killed":
        status_at = status_at or parse_time(row.get("killed_at"), "killed_at")

    completed_at = None
    if status in (Status.COMPLETED, Status.FAILED, Status.KILLED, Status.DELETED):
        complete_event = _last(events, "complete")
        completed_at = (
            parse_time(row.get("completed_at"), "completed_at")
            or parse_time(meta.get("completed_at"), "completed_at")
            or (status_at if status != Status.DELETED else None)
            or (complete_event.timestamp if complete_event else None)
        )
        if completed_at is None and status != Status.DELETED:
            completed_at = last_activity or updated_at

    error: dict[str, Any] | None = None
    pause_reason = ""
    clarification = ""
    if source_status in ("running", "active"):
        error = {
            "code": INTERRUPTED,
            "message": (
                "The session was running in the original service when it was imported; "
                "its worker is gone, so it cannot continue."
            ),
        }
    elif source_status == "failed":
        error_event = _last(events, "error")
        message = _error_text(meta.get("error")) or (
            _error_text(error_event.data.get("error") or error_event.data.get("message"))
            if error_event
            else ""
        )
        code = (
            (error_event.data.get("error_type") or error_event.data.get("code"))
            if error_event
            else None
        )
        error = {"code": as_text(code, "error code") or "failed", "message": message}
    elif source_status == "killed":
        error = {
            "code": "killed",
            "message": as_text(_live(meta, row, "kill_reason"), "kill_reason") or "killed by user",
            "killed_by": as_text(_live(meta, row, "killed_by"), "killed_by") or None,
        }
    elif source_status == "terminated":
        reason = as_text(_live(meta, row, "termination_reason"), "termination_reason")
        error = {
            "code": "terminated",
            "message": reason or "terminated",
            "termination_type": as_text(_live(meta, row, "termination_type"), "termination_type")
            or None,
        }
    elif source_status == "paused":
        last_type = events[-1].event_type if events else ""
        waiting = source_phase == "clarification_needed" or last_type in (
            "clarification_required",
            "clarification_requested",
        )
        pause_reason = PauseReason.CLARIFICATION if waiting else PauseReason.USER
        clarification = _clarification_question(events) if waiting else ""

    phase: str
    if status == Status.COMPLETED:
        phase = Phase.COMPLETE
    elif source_phase in PHASES:
        phase = PHASES[source_phase]
    elif source_phase:
        raise BrokenRecord(f"unknown phase {source_phase!r}")
    else:
        last_known = next(
            (EVENT_PHASES[e.event_type] for e in reversed(events) if e.event_type in EVENT_PHASES),
            None,
        )
        phase = last_known or Phase.INTAKE

    complete = _last(events, "complete")
    total_cost = as_number(row.get("total_cost"), "total_cost")
    if total_cost is None and complete is not None:
        total_cost = as_number(complete.data.get("total_cost"), "total_cost")
    round_number = as_integer(row.get("round_number"), "round_number")
    if round_number is None and complete is not None:
        round_number = as_integer(complete.data.get("total_rounds"), "total_rounds")
    contributions = sum(1 for e in events if e.event_type == "contribution")
    synthesis = as_text(row.get("synthesis_text"), "synthesis_text")
    if not synthesis:
        done = _last(events, "synthesis_complete")
        if done is not None:
            synthesis = as_text(done.data.get("synthesis"), "synthesis")
    if not synthesis and complete is not None:
        synthesis = as_text(complete.data.get("final_output"), "final_output")

    fields: dict[str, Any] = {
        "problem_statement": problem,
        "problem_context": context,
        "status": status,
        "status_changed_at": status_at or completed_at or updated_at,
        "pause_reason": pause_reason,
        "clarification_question": clarification,
        "phase": phase,
        "round_number": max(round_number or 0, 0),
        "personas": _personas(events),
        "contribution_count": max(
            contributions, as_integer(row.get("contribution_count"), "contribution_count") or 0
        ),
        "total_cost": (total_cost or Decimal(0)).quantize(Decimal("0.000001")),
        "total_tokens": max(as_integer(row.get("total_tokens"), "total_tokens") or 0, 0),
        "synthesis_text": synthesis,
        "final_recommendation": as_text(row.get("final_recommendation"), "final_recommendation"),
        "error": error,
        "created_at": created_at,
        "updated_at": updated_at,
        "last_activity_at": last_activity,
        "started_at": started_at,
        "completed_at": completed_at,
    }
    user_id = as_text(row.get("user_id") or meta.get("user_id"), "user_id")
    if not user_id:
        raise BrokenRecord("no user_id")
    return Merged(
        id=session_id,
        source_user_id=user_id,
        source_status=source_status,
        source_phase=source_phase,
        stores=stores,
        fields=fields,
        events=events,
        votes=votes,
    )
