"""The words a deliberation session is spoken in: statuses, phases, events and what each carries.

One definition, read by every layer: the engine (`deliberation/engine/`) emits these events, the
runner tracks their phases, the store (`sessions_app`) keeps these statuses, the stream ends on
the terminal events, the transcript and export read the event fields, and the dashboard's page
scripts receive `for_pages()` as JSON from the server.

It is a top-level package of plain Python (no Django, no import of either app) because both
sides of the one-way layering need it: the engine may import neither app, and the store may
import nothing from `deliberation`. Django's `TextChoices` for the model fields are built from
these enums in `sessions_app/models.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """A session's lifecycle; the transition table lives with the one status-changing service."""

    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    DELETED = "deleted"


class Phase(StrEnum):
    """How far a deliberation has come, in the order it passes through them."""

    INTAKE = "intake"
    DECOMPOSITION = "decomposition"
    SELECTION = "selection"
    INITIAL_ROUND = "initial_round"
    DISCUSSION = "discussion"
    VOTING = "voting"
    SYNTHESIS = "synthesis"
    COMPLETE = "complete"


class PauseReason(StrEnum):
    USER = "user"
    CLARIFICATION = "clarification"
    BUDGET = "budget"


PHASES: tuple[Phase, ...] = tuple(Phase)

# -- status groups ------------------------------------------------------------------------------

# Nothing more happens to a session in one of these (a deleted one is only hidden).
FINISHED_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.KILLED, Status.DELETED})
UNFINISHED_STATUSES = tuple(s for s in Status if s not in FINISHED_STATUSES)
# A worker may pick these up: queued ones, and running ones whose worker died.
RUNNABLE_STATUSES = (Status.QUEUED, Status.RUNNING)
# A worker holds (or should hold) a lease on these; the repair pass looks after them.
ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING, Status.PAUSED)
# What a user may filter their list by: every status but the soft-deleted one.
LISTABLE_STATUSES = tuple(s for s in Status if s != Status.DELETED)


# -- events -------------------------------------------------------------------------------------


class EventType(StrEnum):
    SESSION_STARTED = "session_started"
    DECOMPOSITION_STARTED = "decomposition_started"
    DECOMPOSITION_COMPLETE = "decomposition_complete"
    CLARIFICATION_REQUESTED = "clarification_requested"
    PERSONA_SELECTED = "persona_selected"
    PERSONA_SELECTION_COMPLETE = "persona_selection_complete"
    INITIAL_ROUND_STARTED = "initial_round_started"
    ROUND_STARTED = "round_started"
    CONTRIBUTION = "contribution"
    FACILITATOR_DECISION = "facilitator_decision"
    CONVERGENCE = "convergence"
    VOTING_STARTED = "voting_started"
    PERSONA_VOTE = "persona_vote"
    VOTING_COMPLETE = "voting_complete"
    SYNTHESIS_STARTED = "synthesis_started"
    SYNTHESIS_COMPLETE = "synthesis_complete"
    COMPLETE = "complete"
    # Not from the engine: the control API, the runner and the store announce these.
    ERROR = "error"
    PAUSED = "paused"
    RESUMED = "resumed"
    KILLED = "killed"
    CLARIFICATION_ANSWERED = "clarification_answered"


@dataclass(frozen=True)
class EventSpec:
    """What one event type means: the data it always carries, what it may carry besides, the
    phase it moves the session into (engine events) and whether it ends the stream."""

    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()
    phase: Phase | None = None
    ends_stream: bool = False


_SUB = "sub_problem_index"
E = EventType

EVENTS: dict[str, EventSpec] = {
    E.SESSION_STARTED: EventSpec(
        ("problem_statement", "provider", "max_rounds", "max_cost"), phase=Phase.INTAKE
    ),
    E.DECOMPOSITION_STARTED: EventSpec((), phase=Phase.DECOMPOSITION),
    E.DECOMPOSITION_COMPLETE: EventSpec(("sub_problems", "count"), phase=Phase.DECOMPOSITION),
    E.CLARIFICATION_REQUESTED: EventSpec(("question",), phase=Phase.DECOMPOSITION),
    E.PERSONA_SELECTED: EventSpec(
        ("persona_code", "persona_name", "archetype", "domain", "expertise", "rationale", _SUB),
        phase=Phase.SELECTION,
    ),
    E.PERSONA_SELECTION_COMPLETE: EventSpec(("persona_codes", _SUB), phase=Phase.SELECTION),
    E.INITIAL_ROUND_STARTED: EventSpec(("round", "persona_codes", _SUB), phase=Phase.INITIAL_ROUND),
    E.ROUND_STARTED: EventSpec(("round", "max_rounds", _SUB), phase=Phase.DISCUSSION),
    E.CONTRIBUTION: EventSpec(
        ("round", "persona_code", "persona_name", "content", "is_moderator", _SUB),
        phase=Phase.DISCUSSION,
    ),
    E.FACILITATOR_DECISION: EventSpec(
        ("round", "action", "reasoning", _SUB), optional=("moderator",), phase=Phase.DISCUSSION
    ),
    E.CONVERGENCE: EventSpec(
        ("round", "score", "threshold", "reasoning", _SUB), phase=Phase.DISCUSSION
    ),
    E.VOTING_STARTED: EventSpec(("persona_codes", "stop_reason", _SUB), phase=Phase.VOTING),
    E.PERSONA_VOTE: EventSpec(
        (
            "persona_code",
            "persona_name",
            "recommendation",
            "confidence",
            "conditions",
            "reasoning",
            _SUB,
        ),
        phase=Phase.VOTING,
    ),
    E.VOTING_COMPLETE: EventSpec(
        (
            "consensus_level",
            "consensus_score",
            "average_confidence",
            "agreement",
            "votes",
            _SUB,
        ),
        phase=Phase.VOTING,
    ),
    E.SYNTHESIS_STARTED: EventSpec((_SUB,), phase=Phase.SYNTHESIS),
    # One per sub-problem (with its consensus), then, for several, the meta-synthesis (with the
    # prioritised actions and sub_problem_index None).
    E.SYNTHESIS_COMPLETE: EventSpec(
        ("synthesis", "recommendation", _SUB),
        optional=("consensus_level", "stop_reason", "prioritised_actions"),
        phase=Phase.SYNTHESIS,
    ),
    E.COMPLETE: EventSpec(
        (
            "synthesis",
            "final_recommendation",
            "total_cost",
            "total_tokens",
            "stop_reason",
            "consensus_level",
            "costs_by_phase",
            "tokens_by_phase",
            "sub_problems",
        ),
        phase=Phase.COMPLETE,
        ends_stream=True,
    ),
    E.ERROR: EventSpec(("code", "message"), ends_stream=True),
    # budget pauses carry the total cost, clarification pauses the question
    E.PAUSED: EventSpec(("reason",), optional=("question", "total_cost")),
    E.RESUMED: EventSpec((), optional=("cost_limit",)),
    E.KILLED: EventSpec(("reason",), ends_stream=True),
    E.CLARIFICATION_ANSWERED: EventSpec(("question", "answer")),
}

# After one of these the deliberation emits nothing more: a stream of its events ends.
TERMINAL_EVENTS = frozenset(t for t, spec in EVENTS.items() if spec.ends_stream)
# The phase each engine event moves the session into.
EVENT_PHASES: dict[str, Phase] = {
    t: spec.phase for t, spec in EVENTS.items() if spec.phase is not None
}
ENGINE_EVENTS = frozenset(EVENT_PHASES)
# Events of the session's lifecycle rather than of the board's work.
CONTROL_EVENTS = frozenset(t for t in EventType if t not in ENGINE_EVENTS)


def missing_fields(event_type: str, data: dict[str, Any]) -> list[str]:
    """The fields `data` lacks for its event type (an unknown type lacks nothing)."""
    spec = EVENTS.get(event_type)
    return [] if spec is None else [name for name in spec.fields if name not in data]


def for_pages() -> dict[str, Any]:
    """The vocabulary as the dashboard's page scripts read it (handed over as JSON)."""
    return {
        "event_types": [str(t) for t in EventType],
        "terminal_events": sorted(str(t) for t in TERMINAL_EVENTS),
        "control_events": sorted(str(t) for t in CONTROL_EVENTS),
        "event_phases": {str(t): str(p) for t, p in EVENT_PHASES.items()},
        "phases": [str(p) for p in PHASES],
        "finished_statuses": sorted(str(s) for s in FINISHED_STATUSES),
        "live_statuses": [str(s) for s in RUNNABLE_STATUSES],
    }
