"""The vote: each persona votes, then the consensus is measured."""

from __future__ import annotations

import logging

from vocabulary import EventType, Phase

from . import prompts
from .core import EngineCore
from .readers import read_vote
from .scoring import consensus

logger = logging.getLogger(__name__)


class VotingSteps(EngineCore):
    """Each board member's vote and the consensus of the sub-problem."""

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
