"""How one session of the original service becomes one of ours: pure functions, no I/O.

The merge rule: the original wrote every status change to Redis first (`metadata:{sid}`), so
where that key exists its live fields win; the PostgreSQL row fills in the rest. `updated_at` is
never compared: the old write-through bumps the row just after a change made in Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from sessions_app.models import PauseReason, Phase, Status

INTERRUPTED = "interrupted_before_import"


class BrokenRecord(Exception):
    """A source record that cannot be imported; the message is the reason shown to the operator."""


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


def parse_time(value: Any, what: str = "timestamp") -> datetime | None:
    """An aware datetime from what the original wrote: a datetime, ISO 8601 or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BrokenRecord(
                f"{what} {text[:40]!r} is neither ISO 8601 nor epoch seconds"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise BrokenRecord(f"{what} has the wrong type ({type(value).__name__})")


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return str(value)
    raise BrokenRecord(f"{what} has the wrong type ({type(value).__name__})")


def _number(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BrokenRecord(f"{what} has the wrong type (bool)")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BrokenRecord(f"{what} {str(value)[:20]!r} is not a number") from None


def _integer(value: Any, what: str) -> int | None:
    number = _number(value, what)
    return int(number) if number is not None else None


@dataclass
class SourceEvent:
    """One event as a store of the original holds it, reduced to what identifies it."""

    event_type: str
    timestamp: datetime
    timestamp_text: str
    sequence: int | None
    data: dict[str, Any]
    key: str  # identifies the event across stores: same type, timestamp and data


def _event_key(event_type: str, timestamp_text: str, data: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(
        orjson.dumps([event_type, timestamp_text, data], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    return f"bo1:{digest}"


def source_event(
    envelope: Any, *, fallback_type: str = "", fallback_time: Any = None
) -> SourceEvent:
    """An event from an envelope `{event_type, session_id, sequence, timestamp, data}`.

    PostgreSQL rows keep the whole envelope in `data`; a row written another way (the inner data
    only) takes its type and time from the row's columns.
    """
    if not isinstance(envelope, dict):
        raise BrokenRecord(f"event is a {type(envelope).__name__}, not an object")
    if "data" in envelope and ("timestamp" in envelope or "event_type" in envelope):
        data = envelope.get("data")
        event_type = envelope.get("event_type") or fallback_type
        raw_time = envelope.get("timestamp") or fallback_time
        sequence = envelope.get("sequence")
    else:
        data, event_type, raw_time, sequence = envelope, fallback_type, fallback_time, None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BrokenRecord(f"event data is a {type(data).__name__}, not an object")
    if not isinstance(event_type, str) or not event_type:
        raise BrokenRecord("event has no event_type")
    timestamp = parse_time(raw_time, "event timestamp")
    if timestamp is None:
        raise BrokenRecord(f"event {event_type} has no timestamp")
    timestamp_text = raw_time if isinstance(raw_time, str) else timestamp.isoformat()
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
        sequence = _integer(sequence, "event sequence")
    return SourceEvent(
        event_type=event_type,
        timestamp=timestamp,
        timestamp_text=timestamp_text,
        sequence=sequence,
        data=data,
        key=_event_key(event_type, timestamp.isoformat(), data),
    )


def merge_events(*sources: Iterable[SourceEvent]) -> list[SourceEvent]:
    """All sources' events, duplicates dropped, in time order (ties: the order given)."""
    seen: set[str] = set()
    merged: list[SourceEvent] = []
    for events in sources:
        for event in events:
            if event.key not in seen:
                seen.add(event.key)
                merged.append(event)
    merged.sort(key=lambda e: e.timestamp)  # stable: ties keep the sources' order
    return merged


def event_data(event: SourceEvent) -> dict[str, Any]:
    """The data we store: the original's data, with its sequence and timestamp kept."""
    data = dict(event.data)
    data["original_sequence"] = event.sequence
    data["original_timestamp"] = event.timestamp_text
    return data


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

    @property
    def fingerprint(self) -> str:
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
        return _text(value.get("message") or value.get("error"), "error message")
    return _text(value, "error")


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

    source_status = _text(_live(meta, row, "status"), "status")
    if source_status not in STATUSES:
        raise BrokenRecord(f"unknown status {source_status!r}")
    source_phase = _text(_live(meta, row, "phase"), "phase")
    status = STATUSES[source_status]

    problem = _text(row.get("problem_statement") or meta.get("problem_statement"), "problem")
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
        error = {"code": _text(code, "error code") or "failed", "message": message}
    elif source_status == "killed":
        error = {
            "code": "killed",
            "message": _text(_live(meta, row, "kill_reason"), "kill_reason") or "killed by user",
            "killed_by": _text(_live(meta, row, "killed_by"), "killed_by") or None,
        }
    elif source_status == "terminated":
        reason = _text(_live(meta, row, "termination_reason"), "termination_reason")
        error = {
            "code": "terminated",
            "message": reason or "terminated",
            "termination_type": _text(_live(meta, row, "termination_type"), "termination_type")
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
    total_cost = _number(row.get("total_cost"), "total_cost")
    if total_cost is None and complete is not None:
        total_cost = _number(complete.data.get("total_cost"), "total_cost")
    round_number = _integer(row.get("round_number"), "round_number")
    if round_number is None and complete is not None:
        round_number = _integer(complete.data.get("total_rounds"), "total_rounds")
    contributions = sum(1 for e in events if e.event_type == "contribution")
    synthesis = _text(row.get("synthesis_text"), "synthesis_text")
    if not synthesis:
        done = _last(events, "synthesis_complete")
        if done is not None:
            synthesis = _text(done.data.get("synthesis"), "synthesis")
    if not synthesis and complete is not None:
        synthesis = _text(complete.data.get("final_output"), "final_output")

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
            contributions, _integer(row.get("contribution_count"), "contribution_count") or 0
        ),
        "total_cost": (total_cost or Decimal(0)).quantize(Decimal("0.000001")),
        "total_tokens": max(_integer(row.get("total_tokens"), "total_tokens") or 0, 0),
        "synthesis_text": synthesis,
        "final_recommendation": _text(row.get("final_recommendation"), "final_recommendation"),
        "error": error,
        "created_at": created_at,
        "updated_at": updated_at,
        "last_activity_at": last_activity,
        "started_at": started_at,
        "completed_at": completed_at,
    }
    user_id = _text(row.get("user_id") or meta.get("user_id"), "user_id")
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
