"""Prompt text for every step of a deliberation.

Each prompt opens with `KEY: value` header lines (TASK, SUB_PROBLEM, ROUND, PERSONA) so that the
offline rehearsal provider and test doubles can tell the steps apart without reading prose.
The problem brief sits in the system text, which stays identical across calls and can be cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TASK_DECOMPOSE = "decompose"
TASK_SELECT = "select"
TASK_CONTRIBUTE = "contribute"
TASK_MODERATE = "moderate"
TASK_FACILITATE = "facilitate"
TASK_CONVERGENCE = "convergence"
TASK_VOTE = "vote"
TASK_SYNTHESIZE = "synthesize"
TASK_META_SYNTHESIZE = "meta_synthesize"

NO_CONTEXT = "(none)"
CONTEXT_LIMIT = 6000
TRANSCRIPT_ITEM_LIMIT = 900
TRANSCRIPT_ITEMS = 18

SYNTHESIS_SECTIONS: tuple[str, ...] = (
    "Executive summary",
    "Recommendation",
    "Rationale",
    "Vote breakdown",
    "Dissenting views",
    "Risks",
    "Open questions",
)
META_SECTIONS: tuple[str, ...] = (
    "Executive summary",
    "Recommendation",
    "Prioritised actions",
    "Sub-problem conclusions",
    "Risks",
    "Open questions",
)

_JSON_ONLY = "Reply with one JSON object and nothing else: no prose before or after it."

BOARD_RULES = (
    "You sit on an advisory board helping one person make a hard decision. Speak in the first "
    "person, in your own voice and from your own expertise. Be concrete: name numbers, options, "
    "conditions and next steps. Engage with what other board members said when it is relevant, "
    "agreeing or disagreeing by name. Do not invent facts about the person's situation; say what "
    "you would need to know instead."
)

FACILITATOR_SYSTEM = (
    "You facilitate an advisory board. You keep the discussion productive: you notice when members "
    "repeat themselves, when an important view is missing and when the board is ready to vote. You "
    "are neutral about the outcome."
)

DECOMPOSER_SYSTEM = (
    "You structure hard decisions. You split a problem into the few distinct questions that must "
    "be answered to decide it well, without inventing facts about the situation."
)

SELECTOR_SYSTEM = (
    "You assemble advisory boards. You choose the few experts whose knowledge matters most for a "
    "question, and you prefer a mix of perspectives over several experts who would say the same "
    "thing."
)

SYNTHESIZER_SYSTEM = (
    "You write the board's final report for the person who asked. You are faithful to what the "
    "board said and how it voted, you keep dissent visible, and you write clear Markdown for a "
    "busy reader."
)


@dataclass(frozen=True)
class Round:
    """Where the discussion of one sub-problem stands: what a round's prompts are written from."""

    sub_problem: dict[str, Any]
    sub_problem_count: int
    number: int
    max_rounds: int
    contributions: Sequence[dict[str, Any]]


def header(task: str, **fields: object) -> str:
    """The machine-readable opening lines of a prompt."""
    lines = [f"TASK: {task}"]
    lines += [f"{key.upper()}: {value}" for key, value in fields.items() if value is not None]
    return "\n".join(lines)


def brief(
    problem_statement: str,
    problem_context: dict[str, Any],
    clarifications: Sequence[tuple[str, str]] = (),
) -> str:
    """The problem as every board member sees it: statement, context and clarifications."""
    if problem_context:
        context = json.dumps(problem_context, indent=2, ensure_ascii=False, sort_keys=True)
        if len(context) > CONTEXT_LIMIT:
            context = context[:CONTEXT_LIMIT] + "\n… (context shortened)"
    else:
        context = NO_CONTEXT
    if clarifications:
        clarified = "\n".join(f"Q: {question}\nA: {answer}" for question, answer in clarifications)
    else:
        clarified = NO_CONTEXT
    return (
        f"PROBLEM:\n{problem_statement.strip()}\n\n"
        f"CONTEXT:\n{context}\n\n"
        f"CLARIFICATIONS:\n{clarified}"
    )


def _one_line(text: str, limit: int) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[:limit].rstrip() + " …"


def transcript(
    contributions: Sequence[dict[str, Any]],
    items: int = TRANSCRIPT_ITEMS,
    limit: int = TRANSCRIPT_ITEM_LIMIT,
) -> str:
    """The recent discussion, one line per contribution, newest last."""
    recent = list(contributions)[-items:]
    if not recent:
        return "(nobody has spoken yet)"
    lines = [
        f"[round {c['round']}] {c['persona_name']} ({c['persona_code']}): "
        f"{_one_line(str(c['content']), limit)}"
        for c in recent
    ]
    skipped = len(contributions) - len(recent)
    if skipped:
        lines.insert(0, f"({skipped} earlier contributions omitted)")
    return "\n".join(lines)


def earlier_conclusions(results: Sequence[dict[str, Any]]) -> str:
    if not results:
        return ""
    lines = [
        f"- Sub-problem {r['index'] + 1} ({_one_line(r['goal'], 160)}): "
        f"{_one_line(r['recommendation'], 400)}"
        for r in results
    ]
    return "\nCONCLUSIONS ON EARLIER SUB-PROBLEMS:\n" + "\n".join(lines) + "\n"


def _sub_problem_block(sub_problem: dict[str, Any], count: int) -> str:
    return (
        f"SUB-PROBLEM {sub_problem['index'] + 1} of {count}: {sub_problem['goal']}\n"
        f"FOCUS: {sub_problem['focus']}"
    )


def persona_system(persona: dict[str, Any], problem_brief: str) -> str:
    return f"{persona['system_prompt']}\n\n{BOARD_RULES}\n\n{problem_brief}"


def role_system(role_text: str, problem_brief: str) -> str:
    return f"{role_text}\n\n{problem_brief}"


def decompose_prompt() -> str:
    return (
        f"{header(TASK_DECOMPOSE)}\n\n"
        "Split the problem above into between 1 and 5 sub-problems. Use one sub-problem when the "
        "decision is a single question; use more only when the parts need separate expertise or "
        "can be decided separately. Order them so that earlier answers inform later ones.\n"
        "If the problem is too vague to deliberate on and the context and clarifications do not "
        "help, ask one short clarification question; otherwise leave it empty.\n\n"
        f"{_JSON_ONLY} Shape:\n"
        '{"sub_problems": [{"goal": "the question to decide", "focus": "what matters most '
        'when deciding it"}], "clarification_question": ""}'
    )


def select_prompt(
    sub_problem: dict[str, Any],
    count: int,
    candidates: Sequence[dict[str, Any]],
    results: Sequence[dict[str, Any]],
) -> str:
    lines = [
        f"- {p['code']} | {p['name']} | {p['archetype']} | {p['domain']} | "
        f"{', '.join(p.get('expertise', []))}"
        for p in candidates
    ]
    return (
        f"{header(TASK_SELECT, sub_problem=sub_problem['index'])}\n\n"
        f"{_sub_problem_block(sub_problem, count)}\n"
        f"{earlier_conclusions(results)}\n"
        "CANDIDATES:\n" + "\n".join(lines) + "\n\n"
        "Choose 3 to 5 candidates for this sub-problem, using their codes exactly as listed, and "
        "say in one sentence why each belongs on the board.\n"
        f"{_JSON_ONLY} Shape:\n"
        '{"personas": [{"code": "candidate_code", "rationale": "why this expert"}]}'
    )


def _round_opening(
    task: str,
    this_round: Round,
    results: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> str:
    """The opening every prompt of a round shares: header, sub-problem, the conclusions on
    earlier sub-problems when given (the members' prompts give them), discussion so far."""
    head = header(
        task,
        sub_problem=this_round.sub_problem["index"],
        round=f"{this_round.number} of {this_round.max_rounds}",
        **fields,
    )
    return (
        f"{head}\n\n"
        f"{_sub_problem_block(this_round.sub_problem, this_round.sub_problem_count)}\n"
        f"{earlier_conclusions(results)}\n"
        f"DISCUSSION SO FAR:\n{transcript(this_round.contributions)}\n\n"
    )


def contribute_prompt(
    persona: dict[str, Any], this_round: Round, results: Sequence[dict[str, Any]]
) -> str:
    if this_round.number == 1:
        instruction = (
            "This is the opening round. Give your initial analysis of the sub-problem from your "
            "expertise: the two or three considerations that matter most, your provisional "
            "position, and what evidence would change your mind. 120 to 220 words."
        )
    else:
        instruction = (
            "This is a discussion round. Respond to the discussion so far: build on or challenge "
            "specific points other members made (name them), refine your position and say "
            "whether you are moving towards agreement. Avoid repeating yourself. 80 to 180 words."
        )
    return (
        f"{_round_opening(TASK_CONTRIBUTE, this_round, results, persona=persona['code'])}"
        f"You are {persona['name']}, {persona['archetype']}. {instruction}"
    )


def moderate_prompt(moderator: dict[str, Any], this_round: Round) -> str:
    return (
        f"{_round_opening(TASK_MODERATE, this_round, persona=moderator['code'])}"
        f"You are {moderator['name']}. The facilitator asked you to intervene before this round. "
        "Make your intervention in 60 to 140 words, addressed to the board."
    )


def facilitate_prompt(this_round: Round) -> str:
    return (
        f"{_round_opening(TASK_FACILITATE, this_round)}"
        f"Round {this_round.number} of at most {this_round.max_rounds} is about to begin. "
        "Decide what happens next:\n"
        '- "continue": the members discuss another round;\n'
        '- "moderator": a moderator intervenes first, then the members discuss. Choose '
        '"contrarian" when the board agrees too easily, "skeptic" when claims lack evidence, '
        '"optimist" when the board is stuck on risks;\n'
        '- "vote": the positions are clear and another round would add little.\n'
        f"{_JSON_ONLY} Shape:\n"
        '{"action": "continue", "moderator": null, "reasoning": "one or two sentences"}'
    )


def convergence_prompt(this_round: Round) -> str:
    return (
        f"{_round_opening(TASK_CONVERGENCE, this_round)}"
        f"Round {this_round.number} has ended. Rate how far the board has converged on a shared "
        "recommendation, from 0 (opposed positions) to 1 (full agreement, remaining differences "
        "are only conditions or emphasis).\n"
        f"{_JSON_ONLY} Shape:\n"
        '{"score": 0.0, "reasoning": "one or two sentences"}'
    )


def vote_prompt(
    persona: dict[str, Any],
    sub_problem: dict[str, Any],
    count: int,
    contributions: Sequence[dict[str, Any]],
) -> str:
    return (
        f"{header(TASK_VOTE, sub_problem=sub_problem['index'], persona=persona['code'])}\n\n"
        f"{_sub_problem_block(sub_problem, count)}\n\n"
        f"DISCUSSION:\n{transcript(contributions)}\n\n"
        f"You are {persona['name']}, {persona['archetype']}. The discussion is over; cast your "
        "vote. Give the recommendation you personally support (one or two sentences), your "
        "confidence from 0 to 1, and the conditions under which you stand by it.\n"
        f"{_JSON_ONLY} Shape:\n"
        '{"recommendation": "...", "confidence": 0.0, "conditions": ["..."], '
        '"reasoning": "one or two sentences"}'
    )


def votes_block(votes: Sequence[dict[str, Any]]) -> str:
    lines = []
    for vote in votes:
        conditions = "; ".join(vote.get("conditions", [])) or "none"
        lines.append(
            f"VOTE: {vote['persona_code']} | {vote['persona_name']} | "
            f"{float(vote['confidence']):.2f} | {_one_line(vote['recommendation'], 400)} | "
            f"conditions: {_one_line(conditions, 300)}"
        )
    return "\n".join(lines) or "(no votes)"


def synthesize_prompt(
    sub_problem: dict[str, Any],
    count: int,
    contributions: Sequence[dict[str, Any]],
    votes: Sequence[dict[str, Any]],
    consensus_level: str,
    stop_reason: str,
) -> str:
    sections = [s for s in SYNTHESIS_SECTIONS if s != "Vote breakdown"]
    return (
        f"{header(TASK_SYNTHESIZE, sub_problem=sub_problem['index'])}\n\n"
        f"{_sub_problem_block(sub_problem, count)}\n\n"
        f"DISCUSSION:\n{transcript(contributions, items=30, limit=600)}\n\n"
        f"VOTES (consensus {consensus_level}; discussion ended by {stop_reason}):\n"
        f"{votes_block(votes)}\n\n"
        "Write the board's synthesis for this sub-problem in Markdown with exactly these level-2 "
        f"headings, in this order: {', '.join(f'## {s}' for s in sections)}. Under "
        "Recommendation, open with one or two sentences stating the recommendation itself. "
        "Keep dissent visible. A vote table is added separately; do not write one. "
        "At most 600 words."
    )


def meta_synthesize_prompt(results: Sequence[dict[str, Any]]) -> str:
    blocks = "\n\n".join(
        f"SUB-PROBLEM {r['index'] + 1}: {r['goal']}\n"
        f"Consensus: {r['consensus_level']}; ended by {r['stop_reason']}\n"
        f"Recommendation: {_one_line(r['recommendation'], 500)}\n"
        f"Summary: {_one_line(r.get('summary', ''), 700)}"
        for r in results
    )
    return (
        f"{header(TASK_META_SYNTHESIZE, sub_problems=len(results))}\n\n"
        f"{blocks}\n\n"
        "Combine the board's conclusions on each sub-problem into one answer to the whole "
        "problem. Write Markdown with exactly these level-2 headings, in this order: "
        "## Executive summary, ## Recommendation, ## Prioritised actions, ## Risks, "
        "## Open questions. Under Recommendation, open with one or two sentences stating the "
        "overall recommendation. Under Prioritised actions, give a numbered list, most important "
        "first. Conclusions per sub-problem are added separately. At most 600 words."
    )
