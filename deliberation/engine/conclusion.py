"""The end: a synthesis per sub-problem, a meta-synthesis for several, and the final answer."""

from __future__ import annotations

import logging

from vocabulary import EventType, Phase

from . import prompts
from .core import EngineCore
from .synthesis import build_meta_synthesis, build_synthesis, split_sections

logger = logging.getLogger(__name__)


_LEVEL_ORDER = {"weak": 0, "moderate": 1, "strong": 2}


class ConclusionSteps(EngineCore):
    """Synthesis, meta-synthesis and the completion of the deliberation."""

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
