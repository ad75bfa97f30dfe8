"""The first phases: the session starts, the problem is decomposed, each board is chosen."""

from __future__ import annotations

import logging

from vocabulary import EventType, PauseReason, Phase

from . import prompts
from .core import EngineCore, Outcome
from .personas import persona_summary
from .readers import (
    read_decomposition,
    read_selection,
)
from .scoring import (
    default_board,
    shortlist_personas,
)

logger = logging.getLogger(__name__)


class BoardSteps(EngineCore):
    """Intake, decomposition (with a clarification when needed) and the choice of personas."""

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
