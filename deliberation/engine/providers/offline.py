"""Offline rehearsal provider: a deterministic, network-free board for demos, tests and dev.

No language model is involved and every text says so. Output depends only on the request (a
hash of it seeds the wording) and on the persona library, so the same problem always yields
the same meeting. What the engine sees from it:

- decomposition: one sub-problem per question in the problem statement (at most three, one
  when there is no question mark); a clarification question is asked only when the statement
  has fewer than 6 words AND the context is empty AND nothing was clarified yet;
- facilitation: a moderator intervenes before round 2, the board simply continues afterwards;
- convergence: below the 0.8 threshold after round 2 and above it after round 3, so
  max_rounds >= 3 ends by consensus in round 3 and max_rounds <= 2 ends at the round limit;
- tokens are estimated from text length and cost a nominal price (see pricing.PRICES).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from typing import Any

from ..parsing import header_value
from ..personas import MODERATOR_CODES, load_moderators, load_personas
from ..pricing import OFFLINE_MODEL
from ..prompts import (
    NO_CONTEXT,
    TASK_CONTRIBUTE,
    TASK_CONVERGENCE,
    TASK_DECOMPOSE,
    TASK_FACILITATE,
    TASK_META_SYNTHESIZE,
    TASK_MODERATE,
    TASK_SELECT,
    TASK_SYNTHESIZE,
    TASK_VOTE,
)
from ..scoring import DOMAIN_KEYWORDS, content_stems, stem
from .base import Completion, estimate_tokens

logger = logging.getLogger(__name__)

NOTICE = "Offline rehearsal — no language model was used"
MIN_WORDS_WITHOUT_CLARIFICATION = 6
MAX_OFFLINE_SUB_PROBLEMS = 3

_BRIEF = re.compile(r"PROBLEM:\n(.*?)\n\nCONTEXT:\n(.*?)\n\nCLARIFICATIONS:\n(.*)\Z", re.DOTALL)
_CANDIDATE = re.compile(r"^- ([a-z0-9_]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| (.*)$", re.MULTILINE)
_SPEAKER = re.compile(r"^\[round (\d+)\] (.+?) \(([a-z0-9_]+)\):", re.MULTILINE)
_GOAL = re.compile(r"^SUB-PROBLEM \d+ of \d+: (.+)$", re.MULTILINE)
_VOTE = re.compile(
    r"^VOTE: ([a-z0-9_]+) \| ([^|]+) \| ([0-9.]+) \| (.+?) \| conditions: (.*)$", re.M
)
_META_ITEM = re.compile(r"^SUB-PROBLEM (\d+): (.+)\n.*\nRecommendation: (.+)$", re.MULTILINE)

FOCUS_BY_DOMAIN = {
    "finance": "financial viability, cash and return",
    "legal": "legal exposure and obligations",
    "product": "customer value and product fit",
    "design": "the experience of the people affected",
    "engineering": "technical feasibility and effort",
    "security": "security exposure",
    "marketing": "positioning and reaching the right audience",
    "operations": "execution capacity and sequencing",
    "strategy": "strategic fit and competitive position",
    "data": "evidence and how success will be measured",
    "sales": "the path to revenue",
    "people": "the team that has to carry it out",
    "customer": "existing customers and retention",
    "ethics": "fairness and wider impact",
    "risk": "downside risk and resilience",
}

_OPENERS = (
    "My first reaction to “{goal}” is that the answer depends on a few facts we do not have yet.",
    "On “{goal}”, I see a genuine opportunity, but not on every version of it.",
    "I would frame “{goal}” less as a yes-or-no question and more as a question of sequencing.",
    "Looking at “{goal}”, my instinct is caution before commitment.",
    "“{goal}” is the kind of decision that is cheap to test and expensive to reverse.",
)
_POSITIONS = (
    "My provisional position: go ahead, but as a small and reversible first step.",
    "My provisional position: not yet — run a time-boxed test first.",
    "My provisional position: yes, provided we cap the downside in advance.",
    "My provisional position: proceed in stages with an explicit decision point after each.",
)
_EVIDENCE = (
    "I would change my mind if the numbers on {exp} pointed the other way.",
    "What would move me is hard evidence on {exp}, not more opinions.",
    "Show me a credible plan for {exp} and I will be much more comfortable.",
    "If a short pilot shows weak results on {exp}, we should stop there.",
)
_RESPONSES = {
    "early": (
        "I take {other}'s point, but I still have a concern about {exp}: it is the part of the "
        "plan that is least tested.",
        "{other} is right to push on this, although I see the risk differently: for me it "
        "centres on {exp}.",
        "I partly agree with {other}. Where I differ is on {exp}, which I think we are "
        "underestimating.",
    ),
    "late": (
        "I am now aligned with {other}: a staged approach with clear checkpoints answers most of "
        "my concern about {exp}.",
        "I agree with where {other} has landed. My remaining condition is that {exp} gets an "
        "explicit owner and a review date.",
        "We have found common ground. Building on {other}'s proposal, I would add one guardrail "
        "on {exp} and otherwise support it.",
    ),
}
_MODERATOR_LINES = {
    "contrarian": (
        "Before we settle: the board is assuming that acting now beats waiting. Make the case "
        "for the opposite. If the strongest argument for doing nothing still looks weak after "
        "this round, proceed with more confidence."
    ),
    "skeptic": (
        "Several claims so far are estimates presented as facts. Which numbers here come from "
        "data, and which from hope? Name the single assumption that, if wrong, sinks the plan, "
        "and say how we would check it within a month."
    ),
    "optimist": (
        "We have listed many risks; let us also name the version of this that works. What is "
        "the smallest step that creates momentum and teaches us something real, whatever the "
        "outcome?"
    ),
}
_CORES = (
    "Proceed with a small, time-boxed pilot and decide on full commitment after reviewing its "
    "results against agreed success criteria.",
    "Go ahead in stages, with a budget cap and a formal go/no-go review at the end of each stage.",
    "Delay full commitment; first run a low-cost test that checks the riskiest assumption, then "
    "decide.",
)


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _short(text: str, limit: int = 90) -> str:
    text = re.sub(r"\s+", " ", text).strip().rstrip("?.!")
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _round_number(prompt: str) -> int:
    value = header_value(prompt, "ROUND") or "1"
    match = re.match(r"\d+", value)
    return int(match.group()) if match else 1


def _main_domain(text: str) -> str:
    stems = content_stems(text)
    scores = {
        domain: len(stems & {stem(word) for word in words})
        for domain, words in DOMAIN_KEYWORDS.items()
    }
    best = max(scores, key=lambda domain: scores[domain])
    return best if scores[best] else "strategy"


class OfflineProvider:
    """Deterministic rehearsal output shaped like a real board's, without any network."""

    name = "offline"

    def __init__(self, *, models: dict[str, str] | None = None, latency_ms: int = 0) -> None:
        self.models = dict(models or {})
        self.latency_ms = max(0, int(latency_ms))
        self._personas = {p["code"]: p for p in load_personas()}
        self._personas.update(load_moderators())

    def complete(
        self, *, role: str, system: str, prompt: str, max_tokens: int, json_mode: bool
    ) -> Completion:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        task = header_value(prompt, "TASK") or ""
        rng = _rng(role, system, prompt)
        writers = {
            TASK_DECOMPOSE: self._decompose,
            TASK_SELECT: self._select,
            TASK_CONTRIBUTE: self._contribute,
            TASK_MODERATE: self._moderate,
            TASK_FACILITATE: self._facilitate,
            TASK_CONVERGENCE: self._convergence,
            TASK_VOTE: self._vote,
            TASK_SYNTHESIZE: self._synthesize,
            TASK_META_SYNTHESIZE: self._meta_synthesize,
        }
        writer = writers.get(task)
        if writer is None:
            text = json.dumps({"note": NOTICE}) if json_mode else f"_{NOTICE}._"
        else:
            text = writer(system, prompt, rng)
        return Completion(
            text=text,
            input_tokens=estimate_tokens(system) + estimate_tokens(prompt),
            output_tokens=estimate_tokens(text),
            cached_tokens=0,
            model=self.models.get(role, OFFLINE_MODEL),
        )

    # ----------------------------------------------------------------- helpers

    def _persona(self, prompt: str) -> dict[str, Any]:
        code = header_value(prompt, "PERSONA") or ""
        if code in self._personas:
            return self._personas[code]
        # A persona from a custom library: read what the prompt says about it.
        match = re.search(r"^You are ([^,\n]+), ([^.\n]+)\.", prompt, re.MULTILINE)
        name, archetype = (
            (match.group(1), match.group(2)) if match else ("A board member", "adviser")
        )
        return {
            "code": code,
            "name": name,
            "archetype": archetype,
            "domain": "strategy",
            "expertise": ["the main trade-offs", "execution"],
        }

    @staticmethod
    def _goal(prompt: str) -> str:
        match = _GOAL.search(prompt)
        return match.group(1).strip() if match else "this decision"

    # ----------------------------------------------------------------- writers

    def _decompose(self, system: str, prompt: str, rng: random.Random) -> str:
        match = _BRIEF.search(system)
        statement, context, clarified = (
            (match.group(1).strip(), match.group(2).strip(), match.group(3).strip())
            if match
            else (system.strip(), NO_CONTEXT, NO_CONTEXT)
        )
        question = ""
        if (
            len(statement.split()) < MIN_WORDS_WITHOUT_CLARIFICATION
            and context == NO_CONTEXT
            and clarified == NO_CONTEXT
        ):
            question = (
                "What outcome matters most to you here, and what constraints (budget, timeline, "
                "people) should the board respect?"
            )
        questions = [
            q.strip() for q in re.findall(r"[^.?!\n]*\?", statement) if len(q.split()) >= 2
        ]
        goals = questions[:MAX_OFFLINE_SUB_PROBLEMS] if len(questions) > 1 else [statement]
        sub_problems = [
            {"goal": _short(goal, 300), "focus": FOCUS_BY_DOMAIN[_main_domain(goal)]}
            for goal in goals
        ]
        return json.dumps(
            {"sub_problems": sub_problems, "clarification_question": question, "note": NOTICE},
            ensure_ascii=False,
        )

    def _select(self, system: str, prompt: str, rng: random.Random) -> str:
        candidates = _CANDIDATE.findall(prompt)
        size = 3 + rng.randrange(3)
        chosen: list[tuple[str, ...]] = []
        domains: set[str] = set()
        for candidate in candidates:
            if candidate[3].strip() not in domains:
                chosen.append(candidate)
                domains.add(candidate[3].strip())
            if len(chosen) == size:
                break
        goal = _short(self._goal(prompt), 80)
        personas = [
            {
                "code": code,
                "rationale": f"{name.strip()} brings {expertise.split(',')[0].strip()} to "
                f"“{goal}” from a {domain.strip()} angle. ({NOTICE}.)",
            }
            for code, name, _archetype, domain, expertise in chosen
        ]
        return json.dumps({"personas": personas}, ensure_ascii=False)

    def _contribute(self, system: str, prompt: str, rng: random.Random) -> str:
        persona = self._persona(prompt)
        goal = _short(self._goal(prompt))
        expertise = list(persona.get("expertise") or ["the main trade-offs"])
        rng.shuffle(expertise)
        first, second = expertise[0], expertise[1 % len(expertise)]
        round_number = _round_number(prompt)
        if round_number == 1:
            body = (
                f"{rng.choice(_OPENERS).format(goal=goal)} As {persona['archetype']}, I see it "
                f"turning on {first} and {second}. {rng.choice(_POSITIONS)} "
                f"{rng.choice(_EVIDENCE).format(exp=second)}"
            )
        else:
            others = [
                name for _r, name, code in _SPEAKER.findall(prompt) if code != persona["code"]
            ]
            other = rng.choice(others) if others else "the board"
            tone = "early" if round_number <= 2 else "late"
            body = (
                f"{rng.choice(_RESPONSES[tone]).format(other=other, exp=first)} "
                f"{rng.choice(_EVIDENCE).format(exp=second)}"
            )
        return f"_{NOTICE}._\n\n{body}"

    def _moderate(self, system: str, prompt: str, rng: random.Random) -> str:
        code = header_value(prompt, "PERSONA") or "skeptic"
        line = _MODERATOR_LINES.get(code, _MODERATOR_LINES["skeptic"])
        return f"_{NOTICE}._\n\n{line}"

    def _facilitate(self, system: str, prompt: str, rng: random.Random) -> str:
        decision: dict[str, Any]
        if _round_number(prompt) == 2:
            moderator = rng.choice(MODERATOR_CODES)
            decision = {
                "action": "moderator",
                "moderator": moderator,
                "reasoning": f"The opening round settled quickly; the {moderator} should test it "
                f"before the board continues. ({NOTICE}.)",
            }
        else:
            decision = {
                "action": "continue",
                "moderator": None,
                "reasoning": f"Positions are moving closer; one more round should settle the "
                f"remaining conditions. ({NOTICE}.)",
            }
        return json.dumps(decision, ensure_ascii=False)

    def _convergence(self, system: str, prompt: str, rng: random.Random) -> str:
        round_number = _round_number(prompt)
        if round_number <= 2:
            score = 0.45 + 0.2 * rng.random()
            reasoning = "Members agree on direction but still differ on conditions."
        else:
            score = 0.82 + 0.1 * rng.random()
            reasoning = "Members have converged on a staged approach; differences are conditions."
        return json.dumps({"score": round(score, 2), "reasoning": f"{reasoning} ({NOTICE}.)"})

    def _vote(self, system: str, prompt: str, rng: random.Random) -> str:
        persona = self._persona(prompt)
        goal = self._goal(prompt)
        # The core recommendation depends on the sub-problem only, so the board agrees on it.
        core = _rng(goal).choice(_CORES)
        expertise = list(persona.get("expertise") or ["execution"])
        focus = rng.choice(expertise)
        vote = {
            "recommendation": f"{core} From my side, judge success on {focus}.",
            "confidence": round(0.65 + 0.25 * rng.random(), 2),
            "conditions": [
                f"A named owner reports on {focus} at each review",
                f"The plan is revisited if {rng.choice(expertise)} deteriorates",
            ],
            "reasoning": f"This keeps the decision reversible while we learn. ({NOTICE}.)",
        }
        return json.dumps(vote, ensure_ascii=False)

    def _synthesize(self, system: str, prompt: str, rng: random.Random) -> str:
        goal = _short(self._goal(prompt), 160)
        votes = _VOTE.findall(prompt)
        if votes:
            leader = max(votes, key=lambda v: float(v[2]))
            recommendation = leader[3].strip()
            doubter = min(votes, key=lambda v: float(v[2]))
        else:
            recommendation, leader, doubter = _CORES[0], None, None
        rationale = "\n".join(
            f"- **{name.strip()}** supports it with {float(confidence):.0%} confidence; "
            f"condition: {conditions.split(';')[0].strip()}."
            for _code, name, confidence, _rec, conditions in votes
        )
        dissent = (
            f"- **{doubter[1].strip()}** was the least confident ({float(doubter[2]):.0%}) and "
            "wants the conditions honoured before any expansion."
            if doubter and doubter is not leader
            else "No member dissented."
        )
        return (
            f"## Executive summary\n\n{NOTICE}. This rehearsal shows the shape of a board "
            f"report on “{goal}”; its content is generated from templates, not analysis.\n\n"
            f"## Recommendation\n\n{recommendation}\n\n"
            f"## Rationale\n\n{rationale or '- The board favoured a reversible first step.'}\n\n"
            f"## Dissenting views\n\n{dissent}\n\n"
            "## Risks\n\n- Committing before the pilot's results are in.\n"
            "- Success criteria that are agreed too vaguely to act on.\n\n"
            "## Open questions\n\n- What result from the first stage would make us stop?\n"
            "- Who owns the decision at each review?\n"
        )

    def _meta_synthesize(self, system: str, prompt: str, rng: random.Random) -> str:
        items = _META_ITEM.findall(prompt)
        actions = "\n".join(
            f"{n}. Sub-problem {index}: {recommendation.strip()}"
            for n, (index, _goal, recommendation) in enumerate(items, 1)
        )
        return (
            f"## Executive summary\n\n{NOTICE}. The board answered {len(items)} sub-problems and "
            "recommends moving in stages, each with its own review.\n\n"
            "## Recommendation\n\nAct on the sub-problems in order, treating each stage as a "
            "test with explicit success criteria before committing further.\n\n"
            f"## Prioritised actions\n\n{actions or '1. Agree the success criteria.'}\n\n"
            "## Risks\n\n- Later stages depend on assumptions the first stage has not yet "
            "tested.\n\n"
            "## Open questions\n\n- Which stage's result would change the overall plan?\n"
        )
