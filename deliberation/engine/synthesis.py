"""Assembles synthesis reports: the model's sections where readable, the engine's own otherwise."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .parsing import extract_json, first_sentences
from .prompts import META_SECTIONS, SYNTHESIS_SECTIONS
from .scoring import agrees_with, leading_vote

# Most specific first: "Recommended actions" is an action list, not the recommendation.
_HEADING_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Vote breakdown", ("vote", "voting")),
    ("Dissenting views", ("dissent", "minority", "disagree")),
    ("Prioritised actions", ("action", "next step", "prioriti")),
    ("Sub-problem conclusions", ("sub-problem", "subproblem", "conclusion")),
    ("Open questions", ("question", "unknown")),
    ("Risks", ("risk",)),
    ("Rationale", ("rationale", "reason", "why")),
    ("Recommendation", ("recommend", "verdict", "decision")),
    ("Executive summary", ("summary", "executive", "overview", "tl;dr")),
)

_HEADING = re.compile(r"^(?:#{1,6}\s+(.+?)\s*#*\s*|\*\*([^*]+?)\*\*:?\s*)$")

FALLBACK_NOTE = (
    "_The board's written synthesis could not be read, so this report was assembled from the "
    "discussion and the votes._"
)

STOP_REASON_TEXT = {
    "consensus": "reaching consensus",
    "max_rounds": "reaching the round limit",
}


def canonical_heading(title: str, allowed: Sequence[str]) -> str | None:
    lowered = title.lower()
    for canonical, keys in _HEADING_KEYS:
        if canonical in allowed and any(key in lowered for key in keys):
            return canonical
    return None


def split_sections(markdown: str, allowed: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Text before the first heading, and the body under each recognised heading."""
    prelude: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in markdown.splitlines():
        match = _HEADING.match(line.strip())
        if match:
            name = canonical_heading(match.group(1) or match.group(2), allowed)
            if name is not None:
                current = sections.setdefault(name, [])
                continue
            if current is None and line.lstrip().startswith("# "):
                # A document title, not content.
                continue
        (current if current is not None else prelude).append(line)
    bodies = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    return "\n".join(prelude).strip(), {name: body for name, body in bodies.items() if body}


def _cell(text: str, limit: int = 220) -> str:
    flat = re.sub(r"\s+", " ", text).strip().replace("|", "\\|")
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def vote_table(votes: Sequence[dict[str, Any]]) -> str:
    if not votes:
        return "No votes were cast."
    rows = [
        "| Member | Recommendation | Confidence | Conditions |",
        "|---|---|---|---|",
    ]
    for vote in votes:
        conditions = "; ".join(vote.get("conditions", [])) or "—"
        rows.append(
            f"| {_cell(vote['persona_name'], 60)} | {_cell(vote['recommendation'])} | "
            f"{float(vote['confidence']):.0%} | {_cell(conditions, 160)} |"
        )
    return "\n".join(rows)


def _is_usable_prose(text: str) -> bool:
    # A bare JSON object or a few stray words is not a report.
    return len(text.split()) >= 12 and extract_json(text) is None


def _questions_raised(contributions: Sequence[dict[str, Any]], limit: int = 4) -> list[str]:
    found: list[str] = []
    for contribution in contributions:
        for sentence in re.findall(r"[^.?!\n]{15,220}\?", str(contribution["content"])):
            sentence = sentence.strip(" -*_")
            if sentence not in found:
                found.append(sentence)
    return found[-limit:]


def _default_sections(
    goal: str,
    personas: Sequence[dict[str, Any]],
    contributions: Sequence[dict[str, Any]],
    votes: Sequence[dict[str, Any]],
    consensus_level: str,
    stop_reason: str,
    rounds: int,
) -> dict[str, str]:
    leader = leading_vote(votes)
    recommendation = (
        leader["recommendation"] if leader else "The board did not reach a recommendation."
    )
    names = ", ".join(p["name"] for p in personas) or "the board"
    summary = (
        f"{len(personas)} board members ({names}) deliberated on: {goal}. The discussion ran for "
        f"{rounds} round{'s' if rounds != 1 else ''} and ended by "
        f"{STOP_REASON_TEXT.get(stop_reason, stop_reason)}; the vote shows {consensus_level} "
        f"consensus. {recommendation}"
    )
    latest: dict[str, dict[str, Any]] = {}
    for contribution in contributions:
        latest[contribution["persona_code"]] = contribution
    rationale = "\n".join(
        f"- **{c['persona_name']}**: {first_sentences(str(c['content']), 260)}"
        for c in latest.values()
    )
    dissenters = [
        vote
        for vote in votes
        if leader and (not agrees_with(vote, leader) or vote["confidence"] < 0.5)
    ]
    dissent = (
        "\n".join(
            f"- **{vote['persona_name']}** ({float(vote['confidence']):.0%} confident): "
            f"{vote['recommendation']}"
            for vote in dissenters
        )
        or "No member dissented from the recommendation."
    )
    conditions = [c for vote in votes for c in vote.get("conditions", [])]
    risks = (
        "\n".join(f"- The recommendation depends on: {condition}" for condition in conditions[:6])
        or "The board named no specific risks beyond those raised in the discussion."
    )
    questions = _questions_raised(contributions)
    open_questions = "\n".join(f"- {q}" for q in questions) or (
        "- Which of the board's assumptions can be tested cheaply before committing?"
    )
    return {
        "Executive summary": summary,
        "Recommendation": recommendation,
        "Rationale": rationale or "The discussion produced no written rationale.",
        "Dissenting views": dissent,
        "Risks": risks,
        "Open questions": open_questions,
    }


def _model_sections(model_text: str, allowed: Sequence[str]) -> tuple[dict[str, str], bool]:
    """The model's sections, and whether it fell back: with fewer than two readable sections,
    none are kept but its prose, which becomes the executive summary when it is usable."""
    prelude, sections = split_sections(model_text, allowed)
    if len(sections) >= 2:
        return sections, False
    return ({"Executive summary": prelude} if _is_usable_prose(prelude) else {}), True


def _opening(section: str, limit: int = 500) -> str:
    paragraph = re.split(r"\n\s*\n", section.strip(), maxsplit=1)[0]
    return first_sentences(paragraph, limit)


def _report(
    subject: str,
    order: Sequence[str],
    sections: dict[str, str],
    defaults: dict[str, str],
    fell_back: bool,
) -> tuple[str, str]:
    """The Markdown report, each section the model's or else the default, and its recommendation."""
    merged = {name: sections.get(name) or defaults.get(name, "") for name in order}
    parts = [f"# Board synthesis: {first_sentences(subject, 120)}"]
    if fell_back:
        parts.append(FALLBACK_NOTE)
    parts += [f"## {name}\n\n{merged[name].strip()}" for name in order]
    recommendation = _opening(merged["Recommendation"]) or defaults["Recommendation"]
    return "\n\n".join(parts) + "\n", recommendation


def build_synthesis(
    model_text: str,
    *,
    sub_problem: dict[str, Any],
    personas: Sequence[dict[str, Any]],
    contributions: Sequence[dict[str, Any]],
    votes: Sequence[dict[str, Any]],
    consensus_level: str,
    stop_reason: str,
    rounds: int,
) -> tuple[str, str, bool]:
    """The sub-problem report, its one-paragraph recommendation, and whether it fell back."""
    sections, fell_back = _model_sections(model_text, SYNTHESIS_SECTIONS)
    defaults = _default_sections(
        sub_problem["goal"], personas, contributions, votes, consensus_level, stop_reason, rounds
    )
    # The vote table always comes from the recorded votes, never from the model's memory of them.
    sections["Vote breakdown"] = vote_table(votes)
    document, recommendation = _report(
        sub_problem["goal"], SYNTHESIS_SECTIONS, sections, defaults, fell_back
    )
    return document, recommendation, fell_back


def _action_items(section: str) -> list[str]:
    items = []
    for line in section.splitlines():
        match = re.match(r"^\s*(?:\d+[.)]|[-*\u2022])\s+(.+)$", line)
        if match:
            items.append(match.group(1).strip())
    return items


def _conclusions(results: Sequence[dict[str, Any]]) -> str:
    blocks = []
    for result in results:
        blocks.append(
            f"### {result['index'] + 1}. {first_sentences(result['goal'], 160)}\n\n"
            f"**Recommendation:** {result['recommendation']}\n\n"
            f"Consensus: {result['consensus_level']}; the discussion ended by "
            f"{STOP_REASON_TEXT.get(result['stop_reason'], result['stop_reason'])}."
        )
    return "\n\n".join(blocks)


def build_meta_synthesis(
    model_text: str, *, problem_statement: str, results: Sequence[dict[str, Any]]
) -> tuple[str, str, list[str], bool]:
    """The whole-problem report, its recommendation, its prioritised actions, and fallback flag."""
    sections, fell_back = _model_sections(model_text, META_SECTIONS)
    actions = _action_items(sections.get("Prioritised actions", ""))[:10]
    if not actions:
        actions = [first_sentences(r["recommendation"], 240) for r in results]
    joined = " ".join(first_sentences(r["recommendation"], 200) for r in results)
    defaults = {
        "Executive summary": (
            f"The board split the problem into {len(results)} sub-problems and deliberated on "
            f"each. {joined}"
        ),
        "Recommendation": joined,
        "Risks": "See the risks listed in the synthesis of each sub-problem.",
        "Open questions": "See the open questions listed in the synthesis of each sub-problem.",
    }
    sections["Prioritised actions"] = "\n".join(f"{n}. {a}" for n, a in enumerate(actions, 1))
    sections["Sub-problem conclusions"] = _conclusions(results)
    document, recommendation = _report(
        problem_statement, META_SECTIONS, sections, defaults, fell_back
    )
    return document, recommendation, actions, fell_back
