"""Readers for each step's model output, each with the default it falls back to."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .parsing import (
    as_text,
    as_text_list,
    as_unit_float,
    extract_json,
    extract_object,
    first_key,
    first_sentences,
)
from .personas import MODERATOR_CODES

MAX_SUB_PROBLEMS = 5
MIN_BOARD = 3
MAX_BOARD = 5


@dataclass
class Decomposition:
    sub_problems: list[dict[str, Any]]
    clarification_question: str | None
    fell_back: bool


@dataclass
class Selection:
    chosen: list[tuple[dict[str, Any], str]]
    fell_back: bool


@dataclass
class Facilitation:
    action: str
    moderator: str | None
    reasoning: str
    fell_back: bool


@dataclass
class Convergence:
    score: float | None
    reasoning: str


@dataclass
class Vote:
    recommendation: str
    confidence: float
    conditions: list[str] = field(default_factory=list)
    reasoning: str = ""
    fell_back: bool = False


def read_decomposition(text: str, problem_statement: str) -> Decomposition:
    """Sub-problems {index, goal, focus}; one sub-problem equal to the problem if unreadable."""
    data = extract_json(text)
    items: Any = None
    question: str | None = None
    if isinstance(data, dict):
        items = first_key(data, "sub_problems", "subproblems", "problems", "questions", "parts")
        question = as_text(
            first_key(data, "clarification_question", "clarifying_question", "clarification"), 500
        )
    elif isinstance(data, list):
        items = data
    sub_problems: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            goal = as_text(
                first_key(item, "goal", "question", "title", "sub_problem", "description")
            )
            focus = as_text(first_key(item, "focus", "key_focus", "criteria", "why", "rationale"))
        else:
            goal, focus = as_text(item), ""
        if goal:
            sub_problems.append(
                {"index": len(sub_problems), "goal": goal[:600], "focus": focus[:400] or goal[:200]}
            )
        if len(sub_problems) == MAX_SUB_PROBLEMS:
            break
    fell_back = not sub_problems
    if fell_back:
        sub_problems = [
            {
                "index": 0,
                "goal": first_sentences(problem_statement, 600) or problem_statement[:600],
                "focus": "the decision as a whole",
            }
        ]
    return Decomposition(sub_problems, question or None, fell_back)


def _lookup(
    raw: str, by_code: dict[str, dict[str, Any]], by_name: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    key = raw.strip().lower()
    return by_code.get(key) or by_name.get(key)


def read_selection(
    text: str,
    library: Sequence[dict[str, Any]],
    fallback_board: Sequence[dict[str, Any]],
) -> Selection:
    """Three to five personas, each with a rationale, topped up from `fallback_board`.

    The model is shown a shortlist, but a library persona it names from outside it is accepted.
    """
    by_code = {str(p["code"]).lower(): p for p in library}
    by_name = {str(p["name"]).lower(): p for p in library}
    data = extract_json(text)
    items: Any = data
    if isinstance(data, dict):
        items = first_key(data, "personas", "selected", "board", "experts", "members", "codes")
    picked: list[tuple[dict[str, Any], str]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            raw = as_text(first_key(item, "code", "persona_code", "id", "persona", "name"))
            rationale = as_text(first_key(item, "rationale", "reason", "why"), 400)
        else:
            raw, rationale = as_text(item), ""
        persona = _lookup(raw, by_code, by_name)
        if persona and all(persona is not p for p, _ in picked):
            picked.append((persona, rationale))
    if not picked and isinstance(text, str):
        # Prose that names codes still tells us who was chosen.
        for code, persona in by_code.items():
            if re.search(rf"\b{re.escape(code)}\b", text.lower()):
                picked.append((persona, ""))
    fell_back = len(picked) < MIN_BOARD
    # Nothing usable: the whole relevance-ranked board. Too few: top up to the minimum.
    wanted = len(fallback_board) if not picked else MIN_BOARD
    for persona in fallback_board:
        if len(picked) >= wanted:
            break
        if all(persona is not p for p, _ in picked):
            picked.append((persona, ""))
    chosen = [
        (persona, rationale or default_rationale(persona))
        for persona, rationale in picked[:MAX_BOARD]
    ]
    return Selection(chosen, fell_back)


def default_rationale(persona: dict[str, Any]) -> str:
    expertise = persona.get("expertise") or [persona.get("domain", "their field")]
    return f"Brings {persona['domain']} expertise in {', '.join(expertise[:2])}."


def read_facilitation(text: str) -> Facilitation:
    """The facilitator's next step; "continue" when it cannot be read."""
    data = extract_object(text)
    if data is None:
        return Facilitation("continue", None, "The facilitator's decision could not be read.", True)
    raw_action = as_text(first_key(data, "action", "decision", "next", "next_step")).lower()
    moderator = as_text(first_key(data, "moderator", "moderator_type", "intervention")).lower()
    reasoning = as_text(first_key(data, "reasoning", "reason", "rationale"), 600)
    if moderator not in MODERATOR_CODES:
        moderator = next((code for code in MODERATOR_CODES if code in moderator), "")
    if "vote" in raw_action:
        action = "vote"
    elif "moderat" in raw_action or raw_action in MODERATOR_CODES:
        action = "moderator"
        moderator = moderator or (raw_action if raw_action in MODERATOR_CODES else "")
    elif raw_action.startswith("continue") or raw_action == "discuss":
        action = "continue"
    else:
        return Facilitation("continue", None, reasoning or "No usable action was given.", True)
    chosen_moderator = (moderator or None) if action == "moderator" else None
    return Facilitation(action, chosen_moderator, reasoning, False)


def read_convergence(text: str) -> Convergence:
    """The convergence score in 0..1, or None when there is none to read."""
    data = extract_object(text)
    if data is not None:
        score = as_unit_float(first_key(data, "score", "convergence", "convergence_score"))
        reasoning = as_text(first_key(data, "reasoning", "reason", "rationale"), 600)
        if score is not None:
            return Convergence(round(score, 2), reasoning)
    match = re.search(r"(?:score|convergence)\D{0,20}?(\d+(?:\.\d+)?\s*%?)", text or "", re.I)
    score = as_unit_float(match.group(1)) if match else None
    return Convergence(round(score, 2) if score is not None else None, "")


def read_vote(text: str) -> Vote:
    """A vote; recommendation taken from the text at confidence 0.5 when it cannot be read."""
    data = extract_object(text)
    if data is not None:
        recommendation = as_text(
            first_key(data, "recommendation", "vote", "position", "decision", "choice"), 1000
        )
        reasoning = as_text(first_key(data, "reasoning", "rationale", "reason"), 1000)
        confidence = as_unit_float(first_key(data, "confidence", "certainty"))
        conditions = as_text_list(first_key(data, "conditions", "caveats", "requirements"))
        if recommendation or reasoning:
            return Vote(
                recommendation=recommendation or first_sentences(reasoning, 300),
                confidence=0.5 if confidence is None else round(confidence, 2),
                conditions=conditions,
                reasoning=reasoning,
                fell_back=not recommendation or confidence is None,
            )
    recommendation = first_sentences(text or "", 300)
    return Vote(
        recommendation=recommendation or "No clear recommendation was given.",
        confidence=0.5,
        fell_back=True,
    )
