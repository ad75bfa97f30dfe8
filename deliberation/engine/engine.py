"""The deliberation engine: a resumable state machine that runs one board meeting on a provider.

Each step makes at most one provider call, emits its events and hands a checkpoint to the host,
so a run stopped at any step boundary continues from its checkpoint with exactly the events an
uninterrupted run would have emitted.

The steps of each phase live in board.py, discussion.py, voting.py and conclusion.py, on top of
the plumbing in core.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from vocabulary import PauseReason

from .board import BoardSteps
from .conclusion import ConclusionSteps
from .core import (
    CALL_STEPS,
    MAX_ROUNDS,
    MIN_ROUNDS,
    PHASES,
    STATE_VERSION,
    EngineHost,
    Outcome,
    _json_copy,
)
from .discussion import DiscussionSteps
from .personas import load_moderators
from .providers.base import Provider
from .voting import VotingSteps

logger = logging.getLogger(__name__)

__all__ = ["PHASES", "Deliberation", "EngineHost", "Outcome"]


class Deliberation(BoardSteps, DiscussionSteps, VotingSteps, ConclusionSteps):
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
