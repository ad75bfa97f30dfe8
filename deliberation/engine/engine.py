"""The deliberation engine: a resumable state machine that runs one board meeting on a provider.

Each step makes at most one provider call, emits its events and hands a checkpoint to the host,
so a run stopped at any step boundary continues from its checkpoint with exactly the events an
uninterrupted run would have emitted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import vocabulary
from vocabulary import EventType, PauseReason, Phase

from . import prompts
from .personas import (
    MODERATOR_CODES,
    PERSONA_FIELDS,
    load_moderators,
    load_personas,
    persona_summary,
)
from .pricing import COST_QUANTUM, completion_cost
from .providers.base import Completion, Provider
from .readers import (
    read_convergence,
    read_decomposition,
    read_facilitation,
    read_selection,
    read_vote,
)
from .scoring import (
    CONVERGENCE_THRESHOLD,
    consensus,
    default_board,
    heuristic_convergence,
    shortlist_personas,
)
from .synthesis import build_meta_synthesis, build_synthesis, split_sections

logger = logging.getLogger(__name__)

STATE_VERSION = 1
MIN_ROUNDS = 1
MAX_ROUNDS = 10

PHASES = vocabulary.PHASES

MAX_TOKENS: dict[str, int] = {
    "decomposer": 900,
    "selector": 700,
    "persona": 600,
    "moderator": 400,
    "facilitator": 300,
    "voter": 450,
    "synthesizer": 1800,
}

# Steps that call the provider; the budget is checked before them as well as after.
CALL_STEPS = frozenset(
    {"decompose", "select", "speak", "facilitate", "convergence", "vote", "synthesize", "meta"}
)

_LEVEL_ORDER = {"weak": 0, "moderate": 1, "strong": 2}

STOP_SIGNALS = (None, "pause", "kill")


def _json_copy(value: Any) -> Any:
    """A deep copy through JSON: several times faster than copy.deepcopy on engine state, and it
    proves on every checkpoint that the state really is JSON-serialisable."""
    return json.loads(json.dumps(value))


class EngineHost(Protocol):
    """What the engine needs from whoever runs it."""

    def emit(self, event_type: str, data: dict[str, Any]) -> None: ...

    def save_checkpoint(self, state: dict[str, Any]) -> None: ...

    def should_stop(self) -> str | None: ...


@dataclass
class Outcome:
    """How a run of the engine ended; provider failures raise ProviderError instead."""

    status: str
    pause_reason: str | None
    synthesis_text: str
    final_recommendation: str
    total_cost: Decimal
    total_tokens: int
    stop_reason: str | None
    clarification_question: str | None


class Deliberation:
    """One board meeting over one problem, started fresh or continued from a checkpoint."""

    def __init__(
        self,
        *,
        problem_statement: str,
        problem_context: dict[str, Any] | None,
        provider: Provider,
        host: EngineHost,
        max_rounds: int = 6,
        max_cost: Decimal = Decimal("1.00"),
        checkpoint: dict[str, Any] | None = None,
        clarification_answers: list[str] | None = None,
        personas: list[dict[str, Any]] | None = None,
    ) -> None:
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int):
            raise ValueError("max_rounds must be an integer")
        if not MIN_ROUNDS <= max_rounds <= MAX_ROUNDS:
            raise ValueError(f"max_rounds must be between {MIN_ROUNDS} and {MAX_ROUNDS}")
        self._max_cost = Decimal(str(max_cost))
        if self._max_cost <= 0:
            raise ValueError("max_cost must be positive")
        self._statement = (problem_statement or "").strip()
        if not self._statement:
            raise ValueError("problem_statement must not be empty")
        self._context = dict(problem_context or {})
        self._provider = provider
        self._host = host
        self._max_rounds = max_rounds
        self._answers = [a.strip() for a in clarification_answers or [] if a and a.strip()]
        self._library = self._checked_library(personas)
        self._moderators = load_moderators()
        if checkpoint is None:
            self._state = self._fresh_state()
        else:
            if checkpoint.get("version") != STATE_VERSION:
                raise ValueError(f"Unsupported checkpoint version {checkpoint.get('version')!r}")
            self._state = _json_copy(checkpoint)
        self._steps: dict[str, Callable[[], Outcome | None]] = {
            "session_start": self._step_session_start,
            "decomposition_start": self._step_decomposition_start,
            "decompose": self._step_decompose,
            "select": self._step_select,
            "initial_start": self._step_initial_start,
            "speak": self._step_speak,
            "round_start": self._step_round_start,
            "facilitate": self._step_facilitate,
            "convergence": self._step_convergence,
            "voting_start": self._step_voting_start,
            "vote": self._step_vote,
            "voting_complete": self._step_voting_complete,
            "synthesis_start": self._step_synthesis_start,
            "synthesize": self._step_synthesize,
            "meta_start": self._step_meta_start,
            "meta": self._step_meta,
            "complete": self._step_complete,
        }

    # ----------------------------------------------------------------- public interface

    @property
    def state(self) -> dict[str, Any]:
        """The whole engine state, JSON-serialisable; what save_checkpoint receives."""
        return dict(_json_copy(self._state))

    def run(self) -> Outcome:
        """Advance step by step until the deliberation completes, pauses or is killed."""
        while True:
            step = self._state["step"]
            if step == "done":
                return self._outcome("completed")
            signal = self._should_stop()
            if signal == "kill":
                logger.info("Deliberation killed before step %s", step)
                return self._outcome("killed")
            if signal == "pause":
                logger.info("Deliberation paused by request before step %s", step)
                self._checkpoint()
                return self._outcome("paused", PauseReason.USER)
            if step in CALL_STEPS and self._budget_spent():
                self._checkpoint()
                return self._budget_pause()
            calls_before = self._state["calls"]
            outcome = self._steps[step]()
            self._checkpoint()
            if outcome is not None:
                return outcome
            if self._state["calls"] > calls_before and self._budget_spent():
                return self._budget_pause()

    # ----------------------------------------------------------------- plumbing

    @staticmethod
    def _checked_library(personas: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        library = load_personas() if personas is None else copy.deepcopy(list(personas))
        if not library:
            raise ValueError("The persona library is empty")
        for persona in library:
            missing = [name for name in PERSONA_FIELDS if not persona.get(name)]
            if missing:
                raise ValueError(f"Persona {persona.get('code')!r} lacks {', '.join(missing)}")
        return library

    def _fresh_state(self) -> dict[str, Any]:
        digest = hashlib.sha256(self._statement.encode("utf-8")).hexdigest()
        return {
            "version": STATE_VERSION,
            "seed": int(digest[:8], 16),
            "step": "session_start",
            "phase": Phase.INTAKE,
            "sub_problem_index": None,
            "round": 0,
            "sub_problems": [],
            "clarification": {"question": None, "pending": False},
            "current": None,
            "results": [],
            "final": None,
            "total_cost": str(Decimal(0).quantize(COST_QUANTUM)),
            "total_tokens": 0,
            "costs_by_phase": {},
            "tokens_by_phase": {},
            "calls": 0,
            "call_log": [],
            "events_emitted": 0,
        }

    def _should_stop(self) -> str | None:
        signal = self._host.should_stop()
        if signal not in STOP_SIGNALS:
            logger.warning("Ignoring unknown stop signal %r", signal)
            return None
        return signal

    def _checkpoint(self) -> None:
        self._host.save_checkpoint(_json_copy(self._state))

    def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        self._host.emit(event_type, _json_copy(data))
        self._state["events_emitted"] += 1

    def _budget_spent(self) -> bool:
        return Decimal(self._state["total_cost"]) >= self._max_cost

    def _budget_pause(self) -> Outcome:
        logger.info(
            "Deliberation paused: cost %s reached the budget of %s",
            self._state["total_cost"],
            self._max_cost,
        )
        return self._outcome("paused", PauseReason.BUDGET)

    def _outcome(self, status: str, pause_reason: str | None = None) -> Outcome:
        final = self._state.get("final") or {}
        completed = status == "completed"
        question = self._state["clarification"]["question"]
        return Outcome(
            status=status,
            pause_reason=pause_reason,
            synthesis_text=final.get("synthesis", "") if completed else "",
            final_recommendation=final.get("recommendation", "") if completed else "",
            total_cost=Decimal(self._state["total_cost"]),
            total_tokens=self._state["total_tokens"],
            stop_reason=final.get("stop_reason") if completed else None,
            clarification_question=question if pause_reason == PauseReason.CLARIFICATION else None,
        )

    def _call(
        self, *, role: str, phase: str, system: str, prompt: str, json_mode: bool
    ) -> Completion:
        completion = self._provider.complete(
            role=role,
            system=system,
            prompt=prompt,
            max_tokens=MAX_TOKENS[role],
            json_mode=json_mode,
        )
        cost = completion_cost(completion)
        tokens = completion.input_tokens + completion.output_tokens
        state = self._state
        state["total_cost"] = str((Decimal(state["total_cost"]) + cost).quantize(COST_QUANTUM))
        state["total_tokens"] += tokens
        by_phase = state["costs_by_phase"]
        by_phase[phase] = str((Decimal(by_phase.get(phase, "0")) + cost).quantize(COST_QUANTUM))
        state["tokens_by_phase"][phase] = state["tokens_by_phase"].get(phase, 0) + tokens
        state["calls"] += 1
        state["call_log"].append(
            {
                "phase": phase,
                "role": role,
                "model": completion.model,
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "cached_tokens": completion.cached_tokens,
                "cost": str(cost),
            }
        )
        logger.debug(
            "%s call on %s: %d in / %d out tokens, $%s",
            role,
            completion.model,
            completion.input_tokens,
            completion.output_tokens,
            cost,
        )
        return completion

    def _brief(self) -> str:
        question = self._state["clarification"]["question"] or "Additional information"
        pairs = [(question, answer) for answer in self._answers]
        return prompts.brief(self._statement, self._context, pairs)

    def _current(self) -> dict[str, Any]:
        current: dict[str, Any] = self._state["current"]
        return current

    def _sub_problem(self) -> dict[str, Any]:
        sub_problem: dict[str, Any] = self._state["sub_problems"][self._current()["index"]]
        return sub_problem

    def _round(self) -> prompts.Round:
        """The round in progress, as its prompts see it."""
        current = self._current()
        return prompts.Round(
            sub_problem=self._sub_problem(),
            sub_problem_count=len(self._state["sub_problems"]),
            number=current["round"],
            max_rounds=self._max_rounds,
            contributions=current["contributions"],
        )

    def _board_member(self, code: str) -> dict[str, Any]:
        for persona in self._current()["personas"]:
            if persona["code"] == code:
                return dict(persona)
        return self._moderators[code]

    def _codes(self) -> list[str]:
        return [persona["code"] for persona in self._current()["personas"]]

    def _set_phase(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"Unknown phase {phase!r}")
        self._state["phase"] = phase

    def _begin_sub_problem(self, index: int) -> None:
        self._state["current"] = {
            "index": index,
            "personas": [],
            "round": 0,
            "queue": [],
            "contributions": [],
            "decisions": [],
            "convergence": [],
            "votes": [],
            "stop_reason": None,
            "consensus": None,
        }
        self._state["sub_problem_index"] = index
        self._state["round"] = 0
        self._set_phase(Phase.SELECTION)
        self._state["step"] = "select"

    # ----------------------------------------------------------------- steps

    def _step_session_start(self) -> None:
        self._emit(
            EventType.SESSION_STARTED,
            {
                "problem_statement": self._statement,
                "provider": self._provider.name,
                "max_rounds": self._max_rounds,
                "max_cost": str(self._max_cost),
            },
        )
        self._state["step"] = "decomposition_start"

    def _step_decomposition_start(self) -> None:
        self._set_phase(Phase.DECOMPOSITION)
        self._emit(EventType.DECOMPOSITION_STARTED, {})
        self._state["step"] = "decompose"

    def _step_decompose(self) -> Outcome | None:
        clarification = self._state["clarification"]
        if clarification["pending"] and not self._answers:
            # Resumed without an answer: keep waiting, spend nothing.
            return self._outcome("paused", PauseReason.CLARIFICATION)
        completion = self._call(
            role="decomposer",
            phase=Phase.DECOMPOSITION,
            system=prompts.role_system(prompts.DECOMPOSER_SYSTEM, self._brief()),
            prompt=prompts.decompose_prompt(),
            json_mode=True,
        )
        result = read_decomposition(completion.text, self._statement)
        if result.fell_back:
            logger.warning("Decomposition unreadable; deliberating the problem as a whole")
        question = result.clarification_question
        if question and not self._answers and clarification["question"] is None:
            clarification.update(question=question, pending=True)
            self._emit(EventType.CLARIFICATION_REQUESTED, {"question": question})
            logger.info("Deliberation needs clarification: %s", question)
            return self._outcome("paused", PauseReason.CLARIFICATION)
        clarification["pending"] = False
        self._state["sub_problems"] = result.sub_problems
        self._emit(
            EventType.DECOMPOSITION_COMPLETE,
            {"sub_problems": result.sub_problems, "count": len(result.sub_problems)},
        )
        self._begin_sub_problem(0)
        return None

    def _step_select(self) -> None:
        sub_problem = self._sub_problem()
        index = sub_problem["index"]
        shortlist = shortlist_personas(
            self._library, f"{sub_problem['goal']} {sub_problem['focus']}", self._state["seed"]
        )
        completion = self._call(
            role="selector",
            phase=Phase.SELECTION,
            system=prompts.role_system(prompts.SELECTOR_SYSTEM, self._brief()),
            prompt=prompts.select_prompt(
                sub_problem, len(self._state["sub_problems"]), shortlist, self._state["results"]
            ),
            json_mode=True,
        )
        selection = read_selection(completion.text, self._library, default_board(shortlist))
        if selection.fell_back:
            logger.warning("Persona selection unreadable; completed the board by relevance")
        board = []
        for persona, rationale in selection.chosen:
            board.append({**persona_summary(persona), "rationale": rationale})
            self._emit(
                EventType.PERSONA_SELECTED,
                {
                    "persona_code": persona["code"],
                    "persona_name": persona["name"],
                    "archetype": persona["archetype"],
                    "domain": persona["domain"],
                    "expertise": list(persona["expertise"]),
                    "rationale": rationale,
                    "sub_problem_index": index,
                },
            )
        self._current()["personas"] = board
        self._emit(
            EventType.PERSONA_SELECTION_COMPLETE,
            {"persona_codes": [p["code"] for p in board], "sub_problem_index": index},
        )
        self._state["step"] = "initial_start"

    def _step_initial_start(self) -> None:
        current = self._current()
        self._set_phase(Phase.INITIAL_ROUND)
        current["round"] = self._state["round"] = 1
        current["queue"] = self._codes()
        self._emit(
            EventType.INITIAL_ROUND_STARTED,
            {"round": 1, "persona_codes": self._codes(), "sub_problem_index": current["index"]},
        )
        self._state["step"] = "speak"

    def _step_speak(self) -> None:
        current = self._current()
        code = current["queue"][0]
        round_number = current["round"]
        member = self._board_member(code)
        is_moderator = code in MODERATOR_CODES and code not in self._codes()
        if is_moderator:
            completion = self._call(
                role="moderator",
                phase=Phase.DISCUSSION,
                system=prompts.role_system(member["system_prompt"], self._brief()),
                prompt=prompts.moderate_prompt(member, self._round()),
                json_mode=False,
            )
        else:
            completion = self._call(
                role="persona",
                phase=Phase.INITIAL_ROUND if round_number == 1 else Phase.DISCUSSION,
                system=prompts.persona_system(member, self._brief()),
                prompt=prompts.contribute_prompt(member, self._round(), self._state["results"]),
                json_mode=False,
            )
        content = completion.text.strip() or f"{member['name']} had nothing to add this round."
        contribution = {
            "round": round_number,
            "persona_code": code,
            "persona_name": member["name"],
            "content": content,
            "is_moderator": is_moderator,
        }
        current["contributions"].append(contribution)
        self._emit(EventType.CONTRIBUTION, {**contribution, "sub_problem_index": current["index"]})
        current["queue"].pop(0)
        if current["queue"]:
            return
        if round_number > 1:
            self._state["step"] = "convergence"
        elif self._max_rounds > 1:
            self._state["step"] = "round_start"
        else:
            self._finish_discussion("max_rounds")

    def _step_round_start(self) -> None:
        current = self._current()
        self._set_phase(Phase.DISCUSSION)
        current["round"] += 1
        self._state["round"] = current["round"]
        self._emit(
            EventType.ROUND_STARTED,
            {
                "round": current["round"],
                "max_rounds": self._max_rounds,
                "sub_problem_index": current["index"],
            },
        )
        self._state["step"] = "facilitate"

    def _ask_facilitator(self, prompt: str) -> Completion:
        """The facilitator's call before a round (what next?) and after it (converged yet?)."""
        return self._call(
            role="facilitator",
            phase=Phase.DISCUSSION,
            system=prompts.role_system(prompts.FACILITATOR_SYSTEM, self._brief()),
            prompt=prompt,
            json_mode=True,
        )

    def _step_facilitate(self) -> None:
        current = self._current()
        round_number = current["round"]
        completion = self._ask_facilitator(prompts.facilitate_prompt(self._round()))
        decision = read_facilitation(completion.text)
        if decision.fell_back:
            logger.warning("Facilitator decision unreadable; the discussion continues")
        moderator = decision.moderator
        if decision.action == "moderator" and moderator is None:
            # Rotate through the moderators so repeated fallbacks do not always pick the same.
            moderator = MODERATOR_CODES[(self._state["seed"] + round_number) % len(MODERATOR_CODES)]
        data: dict[str, Any] = {
            "round": round_number,
            "action": decision.action,
            "reasoning": decision.reasoning,
            "sub_problem_index": current["index"],
        }
        if moderator:
            data["moderator"] = moderator
        current["decisions"].append({k: v for k, v in data.items() if k != "sub_problem_index"})
        self._emit(EventType.FACILITATOR_DECISION, data)
        if decision.action == "vote":
            # The facilitator judged the positions settled: that is the board's consensus call.
            self._finish_discussion("consensus")
            return
        current["queue"] = ([moderator] if moderator else []) + self._codes()
        self._state["step"] = "speak"

    def _step_convergence(self) -> None:
        current = self._current()
        round_number = current["round"]
        completion = self._ask_facilitator(prompts.convergence_prompt(self._round()))
        reading = read_convergence(completion.text)
        score = reading.score
        if score is None:
            logger.warning("Convergence score unreadable; estimating it from the discussion")
            this_round = [
                c["content"] for c in current["contributions"] if c["round"] == round_number
            ]
            score = heuristic_convergence(this_round, round_number)
        current["convergence"].append({"round": round_number, "score": score})
        self._emit(
            EventType.CONVERGENCE,
            {
                "round": round_number,
                "score": score,
                "threshold": CONVERGENCE_THRESHOLD,
                "reasoning": reading.reasoning,
                "sub_problem_index": current["index"],
            },
        )
        if score >= CONVERGENCE_THRESHOLD:
            self._finish_discussion("consensus")
        elif round_number >= self._max_rounds:
            self._finish_discussion("max_rounds")
        else:
            self._state["step"] = "round_start"

    def _finish_discussion(self, stop_reason: str) -> None:
        self._current()["stop_reason"] = stop_reason
        self._state["step"] = "voting_start"

    def _step_voting_start(self) -> None:
        current = self._current()
        self._set_phase(Phase.VOTING)
        current["queue"] = self._codes()
        self._emit(
            EventType.VOTING_STARTED,
            {
                "persona_codes": self._codes(),
                "stop_reason": current["stop_reason"],
                "sub_problem_index": current["index"],
            },
        )
        self._state["step"] = "vote"

    def _step_vote(self) -> None:
        current = self._current()
        persona = self._board_member(current["queue"][0])
        completion = self._call(
            role="voter",
            phase=Phase.VOTING,
            system=prompts.persona_system(persona, self._brief()),
            prompt=prompts.vote_prompt(
                persona,
                self._sub_problem(),
                len(self._state["sub_problems"]),
                current["contributions"],
            ),
            json_mode=True,
        )
        vote = read_vote(completion.text)
        if vote.fell_back:
            logger.warning("Vote of %s partly unreadable; defaults applied", persona["code"])
        record = {
            "persona_code": persona["code"],
            "persona_name": persona["name"],
            "recommendation": vote.recommendation,
            "confidence": vote.confidence,
            "conditions": vote.conditions,
            "reasoning": vote.reasoning,
        }
        current["votes"].append(record)
        self._emit(EventType.PERSONA_VOTE, {**record, "sub_problem_index": current["index"]})
        current["queue"].pop(0)
        if not current["queue"]:
            self._state["step"] = "voting_complete"

    def _step_voting_complete(self) -> None:
        current = self._current()
        scores = current["convergence"]
        summary = consensus(current["votes"], scores[-1]["score"] if scores else None)
        current["consensus"] = summary
        self._emit(
            EventType.VOTING_COMPLETE,
            {
                **summary,
                "votes": [
                    {
                        "persona_code": vote["persona_code"],
                        "persona_name": vote["persona_name"],
                        "recommendation": vote["recommendation"],
                        "confidence": vote["confidence"],
                    }
                    for vote in current["votes"]
                ],
                "sub_problem_index": current["index"],
            },
        )
        self._state["step"] = "synthesis_start"

    def _step_synthesis_start(self) -> None:
        self._set_phase(Phase.SYNTHESIS)
        self._emit(EventType.SYNTHESIS_STARTED, {"sub_problem_index": self._current()["index"]})
        self._state["step"] = "synthesize"

    def _step_synthesize(self) -> None:
        current = self._current()
        sub_problem = self._sub_problem()
        level = current["consensus"]["consensus_level"]
        completion = self._call(
            role="synthesizer",
            phase=Phase.SYNTHESIS,
            system=prompts.role_system(prompts.SYNTHESIZER_SYSTEM, self._brief()),
            prompt=prompts.synthesize_prompt(
                sub_problem,
                len(self._state["sub_problems"]),
                current["contributions"],
                current["votes"],
                level,
                current["stop_reason"],
            ),
            json_mode=False,
        )
        document, recommendation, fell_back = build_synthesis(
            completion.text,
            sub_problem=sub_problem,
            personas=current["personas"],
            contributions=current["contributions"],
            votes=current["votes"],
            consensus_level=level,
            stop_reason=current["stop_reason"],
            rounds=current["round"],
        )
        if fell_back:
            logger.warning("Synthesis unreadable; assembled it from the discussion and votes")
        _, sections = split_sections(document, prompts.SYNTHESIS_SECTIONS)
        self._state["results"].append(
            {
                "index": sub_problem["index"],
                "goal": sub_problem["goal"],
                "persona_codes": self._codes(),
                "rounds": current["round"],
                "stop_reason": current["stop_reason"],
                "consensus_level": level,
                "recommendation": recommendation,
                "summary": sections.get("Executive summary", ""),
                "synthesis": document,
            }
        )
        self._emit(
            EventType.SYNTHESIS_COMPLETE,
            {
                "synthesis": document,
                "recommendation": recommendation,
                "consensus_level": level,
                "stop_reason": current["stop_reason"],
                "sub_problem_index": sub_problem["index"],
            },
        )
        next_index = sub_problem["index"] + 1
        if next_index < len(self._state["sub_problems"]):
            self._begin_sub_problem(next_index)
        elif len(self._state["sub_problems"]) > 1:
            self._state["step"] = "meta_start"
        else:
            self._state["step"] = "complete"

    def _step_meta_start(self) -> None:
        self._state["current"] = None
        self._state["sub_problem_index"] = None
        self._emit(EventType.SYNTHESIS_STARTED, {"sub_problem_index": None})
        self._state["step"] = "meta"

    def _step_meta(self) -> None:
        results = self._state["results"]
        completion = self._call(
            role="synthesizer",
            phase=Phase.SYNTHESIS,
            system=prompts.role_system(prompts.SYNTHESIZER_SYSTEM, self._brief()),
            prompt=prompts.meta_synthesize_prompt(results),
            json_mode=False,
        )
        document, recommendation, actions, fell_back = build_meta_synthesis(
            completion.text, problem_statement=self._statement, results=results
        )
        if fell_back:
            logger.warning("Meta-synthesis unreadable; assembled it from the sub-problems")
        self._state["final"] = {
            "synthesis": document,
            "recommendation": recommendation,
            "prioritised_actions": actions,
        }
        self._emit(
            EventType.SYNTHESIS_COMPLETE,
            {
                "synthesis": document,
                "recommendation": recommendation,
                "prioritised_actions": actions,
                "sub_problem_index": None,
            },
        )
        self._state["step"] = "complete"

    def _step_complete(self) -> None:
        results = self._state["results"]
        final = self._state["final"] or {
            "synthesis": results[-1]["synthesis"],
            "recommendation": results[-1]["recommendation"],
            "prioritised_actions": [],
        }
        stop_reason = (
            "consensus" if all(r["stop_reason"] == "consensus" for r in results) else "max_rounds"
        )
        # The whole answer is only as agreed as its least agreed part.
        level = min((r["consensus_level"] for r in results), key=_LEVEL_ORDER.__getitem__)
        final.update(stop_reason=stop_reason, consensus_level=level)
        self._state["final"] = final
        self._state["current"] = None
        self._state["sub_problem_index"] = None
        self._set_phase(Phase.COMPLETE)
        self._emit(
            EventType.COMPLETE,
            {
                "synthesis": final["synthesis"],
                "final_recommendation": final["recommendation"],
                "total_cost": self._state["total_cost"],
                "total_tokens": self._state["total_tokens"],
                "stop_reason": stop_reason,
                "consensus_level": level,
                "costs_by_phase": dict(self._state["costs_by_phase"]),
                "tokens_by_phase": dict(self._state["tokens_by_phase"]),
                "sub_problems": [
                    {
                        "index": r["index"],
                        "goal": r["goal"],
                        "recommendation": r["recommendation"],
                        "consensus_level": r["consensus_level"],
                        "stop_reason": r["stop_reason"],
                    }
                    for r in results
                ],
            },
        )
        logger.info(
            "Deliberation complete: %d sub-problem(s), stop reason %s, cost $%s",
            len(results),
            stop_reason,
            self._state["total_cost"],
        )
        self._state["step"] = "done"
