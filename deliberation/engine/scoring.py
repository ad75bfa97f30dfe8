"""Local text heuristics: persona relevance, fallback convergence and consensus level."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

CONVERGENCE_THRESHOLD = 0.8

_STOPWORD_TEXT = """
a about above after again all also am an and any are as at be because been before being both
but by can could did do does doing down during each few for from further had has have having he
her here hers him his how i if in into is it its itself just me more most my no nor not now of
off on once only or other our ours out over own same she should so some such than that the their
them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours us let lets need needs want wants
make take get go going one two three
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Words that point a problem at a domain; persona expertise adds finer signal on top.
DOMAIN_KEYWORDS: dict[str, frozenset[str]] = {
    name: frozenset(words.split())
    for name, words in {
        "finance": "price pricing cost budget revenue cash funding fund raise invest investment "
        "margin profit valuation capital loan debt expense roi payback runway financial money "
        "spend subscription afford equity investor",
        "legal": "legal law contract liability regulation regulatory gdpr license licence patent "
        "trademark lawsuit terms jurisdiction ip lawyer litigation",
        "product": "product feature roadmap user mvp launch app release adoption retention "
        "onboarding prototype",
        "design": "design ux ui usability interface accessibility prototype journey",
        "engineering": "engineering technical tech architecture software code infrastructure "
        "scale scalability migrate migration cloud api build stack rewrite latency reliability "
        "platform ai automation",
        "security": "security breach attack vulnerability encryption threat secure hack fraud "
        "password",
        "marketing": "marketing brand campaign audience positioning awareness seo content "
        "advertising ad messaging social launch",
        "operations": "operation process logistic supply supplier inventory manufacturing "
        "warehouse efficiency vendor capacity fulfilment fulfillment delivery outsourcing "
        "shipping",
        "strategy": "strategy strategic market expand expansion compete competitor competition "
        "acquisition acquire merger partnership pivot vision growth international europe asia "
        "america enter diversify",
        "data": "data analytics metric dashboard experiment measurement forecast ml statistics "
        "kpi insight model tracking",
        "sales": "sales sell deal pipeline quota enterprise b2b prospect lead reseller partner "
        "channel account",
        "people": "hire hiring team culture employee staff talent layoff remote compensation "
        "salary morale leadership burnout manager recruit headcount career",
        "customer": "customer churn support satisfaction nps feedback complaint loyalty service "
        "client",
        "ethics": "ethic ethical fair fairness bias responsible sustainability environment climate "
        "social harm transparency",
        "risk": "risk compliance audit insurance exposure contingency resilience uncertainty "
        "downside",
    }.items()
}

_AGREE = re.compile(
    r"\b(agree|agreed|aligned?|consensus|support|convinced|endorse|common ground|same page|"
    r"converg\w*|build on|in favour|in favor)\b",
    re.IGNORECASE,
)
_DISAGREE = re.compile(
    r"\b(disagree|however|concern\w*|oppose|object|doubt\w*|skeptic\w*|sceptic\w*|unconvinced|"
    r"push back|challenge|not convinced|reject)\b",
    re.IGNORECASE,
)


def stem(word: str) -> str:
    """A crude stem so that 'prices' meets 'pricing' and 'hires' meets 'hiring'."""
    for suffix in ("ations", "ation", "ings", "ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=4096)
def content_stems(text: str) -> frozenset[str]:
    """Stems of the meaningful words of `text` (cached: persona texts are scored repeatedly)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return frozenset(stem(word) for word in words if word not in _STOPWORDS and len(word) > 1)


_DOMAIN_STEMS: dict[str, frozenset[str]] = {
    domain: frozenset(stem(word) for word in words) for domain, words in DOMAIN_KEYWORDS.items()
}


def _jitter(seed: int, code: str) -> float:
    """A stable per-problem tie-breaker in [0, 0.5), so equal scores do not always pick alike."""
    digest = hashlib.sha256(f"{seed}:{code}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 / 2


def persona_relevance(persona: dict[str, Any], text: str, seed: int = 0) -> float:
    """How well `persona` fits a problem described by `text` (higher is better)."""
    problem = content_stems(text)
    domain = str(persona.get("domain", ""))
    score = 3.0 * len(problem & _DOMAIN_STEMS.get(domain, frozenset()))
    own_words = " ".join(
        [
            str(persona.get("archetype", "")),
            " ".join(map(str, persona.get("expertise", []))),
            " ".join(map(str, persona.get("keywords", []))),
        ]
    )
    score += 2.0 * len(problem & content_stems(own_words))
    return score + _jitter(seed, str(persona.get("code", "")))


def shortlist_personas(
    library: Sequence[dict[str, Any]], text: str, seed: int = 0, size: int = 12, per_domain: int = 2
) -> list[dict[str, Any]]:
    """The most relevant personas for `text`, at most `per_domain` from any one domain."""
    ranked = sorted(library, key=lambda p: persona_relevance(p, text, seed), reverse=True)
    chosen: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    for persona in ranked:
        domain = str(persona.get("domain", ""))
        if taken.get(domain, 0) < per_domain:
            chosen.append(persona)
            taken[domain] = taken.get(domain, 0) + 1
        if len(chosen) == size:
            return chosen
    # A small or one-sided library: fill the remaining places regardless of domain.
    chosen += [persona for persona in ranked if persona not in chosen][: size - len(chosen)]
    return chosen


def default_board(shortlist: Sequence[dict[str, Any]], size: int = 4) -> list[dict[str, Any]]:
    """The fallback board: best-ranked personas with distinct domains first."""
    board: list[dict[str, Any]] = []
    domains: set[str] = set()
    for persona in shortlist:
        if persona.get("domain") not in domains:
            board.append(persona)
            domains.add(str(persona.get("domain")))
        if len(board) == size:
            return board
    for persona in shortlist:
        if persona not in board:
            board.append(persona)
        if len(board) == size:
            break
    return board


def heuristic_convergence(contents: Iterable[str], round_number: int) -> float:
    """Convergence estimate when the facilitator's score cannot be read.

    Later rounds and agreeing language push the score up; objections pull it down. It stays
    below 0.95 so a fallback alone rarely ends a discussion early.
    """
    agree = disagree = 0
    for content in contents:
        agree += len(_AGREE.findall(content))
        disagree += len(_DISAGREE.findall(content))
    ratio = agree / (agree + disagree) if agree + disagree else 0.5
    score = 0.25 + 0.12 * max(0, round_number - 1) + 0.35 * ratio
    return round(min(0.95, max(0.0, score)), 2)


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= 0.25


def consensus(votes: Sequence[dict[str, Any]], convergence_score: float | None) -> dict[str, Any]:
    """Consensus level of a vote: strong, moderate or weak, with the numbers behind it.

    Agreement is the share of votes in the largest group of similar recommendations; free text
    from different voices rarely shares many words, so the facilitator's last convergence score
    can vouch for agreement too. The level blends agreement with the average confidence.
    """
    if not votes:
        return {
            "consensus_level": "weak",
            "consensus_score": 0.0,
            "average_confidence": 0.0,
            "agreement": 0.0,
        }
    stems = [content_stems(str(vote.get("recommendation", ""))) for vote in votes]
    largest = max(
        sum(1 for other in stems if other is mine or _similar(mine, other)) for mine in stems
    )
    agreement = max(largest / len(votes), convergence_score or 0.0)
    average = sum(float(vote.get("confidence", 0.5)) for vote in votes) / len(votes)
    score = round(0.5 * agreement + 0.5 * average, 2)
    level = "strong" if score >= 0.7 else "moderate" if score >= 0.5 else "weak"
    return {
        "consensus_level": level,
        "consensus_score": score,
        "average_confidence": round(average, 2),
        "agreement": round(agreement, 2),
    }


def leading_vote(votes: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The vote that best speaks for the board: confident and echoed by similar votes."""
    if not votes:
        return None
    stems = [content_stems(str(vote.get("recommendation", ""))) for vote in votes]

    def weight(index: int) -> float:
        echoes = sum(
            1 for j, other in enumerate(stems) if j != index and _similar(stems[index], other)
        )
        return float(votes[index].get("confidence", 0.5)) * (1 + echoes)

    best = max(range(len(votes)), key=lambda index: (weight(index), -index))
    return votes[best]


def agrees_with(vote: dict[str, Any], leader: dict[str, Any]) -> bool:
    """Whether `vote` recommends much the same as `leader`."""
    if vote is leader:
        return True
    mine = content_stems(str(vote.get("recommendation", "")))
    theirs = content_stems(str(leader.get("recommendation", "")))
    return _similar(mine, theirs)
