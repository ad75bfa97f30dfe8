"""A session's events read as people read a meeting: board, rounds, votes and outcome.

It interprets the deliberation's events (their shapes are in `vocabulary`), so it lives with the
deliberation; the dashboard and the export read it. Plain Python: no Django.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from vocabulary import EventType as E


@dataclass
class BoardMember:
    persona_code: str
    persona_name: str
    archetype: str = ""
    domain: str = ""
    expertise: list[str] = field(default_factory=list)
    rationale: str = ""
    sub_problem_index: int | None = None


@dataclass
class Contribution:
    sequence: int
    persona_code: str
    persona_name: str
    content: str


@dataclass
class Round:
    """The contributions of one round (of one sub-problem, when there are several)."""

    number: int
    sub_problem_index: int | None
    contributions: list[Contribution] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.sub_problem_index or 0}:{self.number}"


@dataclass
class Vote:
    persona_code: str
    persona_name: str
    recommendation: str
    confidence: float | None
    conditions: list[str]
    sub_problem_index: int | None = None

    @property
    def confidence_percent(self) -> int | None:
        if self.confidence is None:
            return None
        # Confidence is 0-1 by contract; a model that answered in percent is shown as it meant.
        value = self.confidence * 100 if self.confidence <= 1 else self.confidence
        return round(max(0.0, min(value, 100.0)))


@dataclass
class OtherEvent:
    """An event of a type this reading does not know (the original's, say), shown plainly."""

    sequence: int
    event_type: str
    text: str


# What the vocabulary does not name (the original service's own types, say) is listed plainly.
KNOWN_EVENT_TYPES = frozenset(E)
OTHER_EVENT_TEXT_CHARS = 500


def _other_text(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > OTHER_EVENT_TEXT_CHARS:
        text = text[: OTHER_EVENT_TEXT_CHARS - 1] + "…"
    return text


@dataclass
class Transcript:
    board: list[BoardMember] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)
    consensus: list[tuple[int | None, Any]] = field(default_factory=list)
    clarifications: list[dict[str, str]] = field(default_factory=list)
    sub_problems: list[str] = field(default_factory=list)
    synthesis: str = ""
    final_recommendation: str = ""
    stop_reason: str = ""
    error: dict[str, Any] | None = None
    last_sequence: int = 0
    other_events: list[OtherEvent] = field(default_factory=list)

    @property
    def several_sub_problems(self) -> bool:
        indexes = {r.sub_problem_index or 0 for r in self.rounds}
        indexes |= {m.sub_problem_index or 0 for m in self.board}
        return len(indexes) > 1 or len(self.sub_problems) > 1


def usd(value: Any) -> str:
    """A cost as dollars with four decimals (costs are kept to six)."""
    try:
        return f"${Decimal(str(value)):.4f}"
    except (InvalidOperation, ValueError):
        return str(value)


def phase_cost_text(value: Any) -> str:
    """One entry of costs_by_phase: a cost, or a dict with cost and tokens."""
    if isinstance(value, dict):
        parts = []
        if "cost" in value:
            parts.append(usd(value["cost"]))
        tokens = value.get("tokens", value.get("total_tokens"))
        if tokens is not None:
            parts.append(f"{tokens} tokens")
        return ", ".join(parts) or json.dumps(value)
    return usd(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _confidence(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _strings(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [_text(v) for v in value if v not in (None, "")]
    return [_text(value)]


def _sub_problem_text(value: Any) -> str:
    if isinstance(value, dict):
        for name in ("goal", "title", "description", "text", "problem"):
            if value.get(name):
                return _text(value[name])
    return _text(value)


def build_transcript(session: dict[str, Any], events: Iterable[dict[str, Any]]) -> Transcript:
    """Read a session snapshot and its events (API shapes) into a Transcript."""
    transcript = Transcript(
        synthesis=_text(session.get("synthesis")),
        final_recommendation=_text(session.get("final_recommendation")),
        error=session.get("error"),
    )
    members: dict[tuple[str, int | None], BoardMember] = {}
    for persona in session.get("personas") or []:
        if not isinstance(persona, dict):
            continue
        code = _text(persona.get("persona_code"))
        index = _index(persona.get("sub_problem_index"))
        members[(code, index)] = BoardMember(
            persona_code=code,
            persona_name=_text(persona.get("persona_name") or code),
            archetype=_text(persona.get("archetype")),
            domain=_text(persona.get("domain")),
            expertise=_strings(persona.get("expertise")),
            rationale=_text(persona.get("rationale")),
            sub_problem_index=index,
        )
    rounds: dict[tuple[int | None, int], Round] = {}
    current_round = 1
    pending_question = ""
    for event in events:
        kind, data = event.get("event_type"), event.get("data") or {}
        transcript.last_sequence = max(transcript.last_sequence, int(event.get("sequence") or 0))
        index = _index(data.get("sub_problem_index"))
        if kind == E.DECOMPOSITION_COMPLETE:
            transcript.sub_problems = [_sub_problem_text(s) for s in data.get("sub_problems") or []]
        elif kind == E.PERSONA_SELECTED:
            # One persona per event; the original service listed the whole board in `personas`.
            listed = data.get("personas")
            entries = (
                [p for p in listed if isinstance(p, dict)] if isinstance(listed, list) else [data]
            )
            for entry in entries:
                code = _text(entry.get("persona_code") or entry.get("code"))
                if not code:
                    continue
                member = members.get((code, index)) or BoardMember(
                    persona_code=code,
                    persona_name=_text(entry.get("persona_name") or entry.get("name") or code),
                )
                member.archetype = member.archetype or _text(entry.get("archetype"))
                member.domain = member.domain or _text(entry.get("domain"))
                member.expertise = member.expertise or _strings(entry.get("expertise"))
                member.rationale = member.rationale or _text(entry.get("rationale"))
                member.sub_problem_index = index
                members[(code, index)] = member
        elif kind in (E.ROUND_STARTED, E.INITIAL_ROUND_STARTED) and isinstance(
            data.get("round"), int
        ):
            current_round = data["round"]
        elif kind == E.CONTRIBUTION:
            number = data.get("round") if isinstance(data.get("round"), int) else current_round
            group = rounds.setdefault((index, number), Round(number, sub_problem_index=index))
            group.contributions.append(
                Contribution(
                    sequence=int(event.get("sequence") or 0),
                    persona_code=_text(data.get("persona_code")),
                    persona_name=_text(data.get("persona_name") or data.get("persona_code")),
                    content=_text(data.get("content")),
                )
            )
        elif kind == E.PERSONA_VOTE:
            transcript.votes.append(
                Vote(
                    persona_code=_text(data.get("persona_code")),
                    persona_name=_text(data.get("persona_name") or data.get("persona_code")),
                    recommendation=_text(data.get("recommendation")),
                    confidence=_confidence(data.get("confidence")),
                    conditions=_strings(data.get("conditions")),
                    sub_problem_index=index,
                )
            )
        elif kind == E.VOTING_COMPLETE:
            transcript.consensus.append((index, data.get("consensus_level")))
        elif kind == E.SYNTHESIS_COMPLETE:
            transcript.synthesis = transcript.synthesis or _text(data.get("synthesis"))
            transcript.final_recommendation = transcript.final_recommendation or _text(
                data.get("recommendation")
            )
        elif kind == E.COMPLETE:
            transcript.synthesis = transcript.synthesis or _text(data.get("synthesis"))
            transcript.final_recommendation = transcript.final_recommendation or _text(
                data.get("final_recommendation")
            )
            transcript.stop_reason = _text(data.get("stop_reason"))
        elif kind == E.CLARIFICATION_REQUESTED:
            pending_question = _text(data.get("question"))
        elif kind == E.CLARIFICATION_ANSWERED:
            question = _text(data.get("question")) or pending_question
            transcript.clarifications.append(
                {"question": question, "answer": _text(data.get("answer"))}
            )
            pending_question = ""
        elif kind == E.ERROR and not transcript.error:
            transcript.error = {"code": data.get("code"), "message": data.get("message")}
        elif kind not in KNOWN_EVENT_TYPES:
            transcript.other_events.append(
                OtherEvent(int(event.get("sequence") or 0), _text(kind), _other_text(data))
            )
    transcript.board = list(members.values())
    transcript.rounds = list(rounds.values())
    return transcript
