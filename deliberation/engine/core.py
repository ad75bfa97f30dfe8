"""The engine's plumbing: its state, the host it reports to, provider calls and their costs.

The phases of a deliberation are steps on top of this (board.py, discussion.py, voting.py,
conclusion.py); engine.py puts them together as `Deliberation`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import vocabulary
from vocabulary import PauseReason, Phase

from . import prompts
from .personas import (
    PERSONA_FIELDS,
    load_personas,
)
from .pricing import COST_QUANTUM, completion_cost
from .providers.base import Completion, Provider

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


class EngineCore:
    """What every step builds on: the state, the host, the provider and the budget."""

    _statement: str
    _context: dict[str, Any]
    _provider: Provider
    _host: EngineHost
    _max_rounds: int
    _max_cost: Decimal
    _answers: list[str]
    _library: list[dict[str, Any]]
    _moderators: dict[str, dict[str, Any]]
    _state: dict[str, Any]

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
