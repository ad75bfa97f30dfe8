"""The discussion: the initial round, then rounds a facilitator steers until convergence."""

from __future__ import annotations

import logging
from typing import Any

from vocabulary import EventType, Phase

from . import prompts
from .core import EngineCore
from .personas import MODERATOR_CODES
from .providers.base import Completion
from .readers import (
    read_convergence,
    read_facilitation,
)
from .scoring import (
    CONVERGENCE_THRESHOLD,
    heuristic_convergence,
)

logger = logging.getLogger(__name__)


class DiscussionSteps(EngineCore):
    """The initial round and the discussion rounds, with the facilitator and moderators."""

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
