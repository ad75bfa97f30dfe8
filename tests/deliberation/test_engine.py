"""Tests of the deliberation engine with the offline provider and scripted providers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliberation.engine import (
    DEFAULT_MODELS,
    PRICES,
    Completion,
    Deliberation,
    Outcome,
    ProviderError,
    completion_cost,
    load_moderators,
    load_personas,
    make_provider,
)
from deliberation.engine.parsing import header_value
from deliberation.engine.personas import PERSONA_FIELDS
from deliberation.engine.prompts import SYNTHESIS_SECTIONS
from deliberation.engine.providers.offline import NOTICE

ONE_QUESTION = "Should we raise our subscription price by 20% for existing customers next quarter?"
TWO_QUESTIONS = (
    "Should we expand our consulting business into Germany next year? "
    "How should we hire and pay the local sales team?"
)
SHORT = "Should we hire more?"

PER_SUB_PROBLEM_EVENTS = {
    "persona_selected",
    "persona_selection_complete",
    "initial_round_started",
    "contribution",
    "round_started",
    "facilitator_decision",
    "convergence",
    "voting_started",
    "persona_vote",
    "voting_complete",
    "synthesis_started",
    "synthesis_complete",
}


def stop_at(call: int, signal: str = "pause") -> Callable[[int], str | None]:
    """A stop plan that answers `signal` on the `call`-th should_stop call."""
    return lambda n: signal if n == call else None


class RecordingHost:
    """An EngineHost that records everything and stops when `stop_plan` says so."""

    def __init__(self, stop_plan: Callable[[int], str | None] | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.log: list[str] = []
        self.stop_calls = 0
        self._stop_plan = stop_plan or (lambda _n: None)

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))
        self.log.append("event")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        # What a real host does: store it as JSON.
        self.checkpoints.append(json.loads(json.dumps(state)))
        self.log.append("checkpoint")

    def should_stop(self) -> str | None:
        self.stop_calls += 1
        return self._stop_plan(self.stop_calls)

    @property
    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]


def run(
    statement: str = ONE_QUESTION,
    *,
    host: RecordingHost | None = None,
    provider: Any = None,
    **kwargs: Any,
) -> tuple[Outcome, RecordingHost]:
    host = host or RecordingHost()
    kwargs.setdefault("problem_context", {})
    deliberation = Deliberation(
        problem_statement=statement,
        provider=provider or make_provider("offline"),
        host=host,
        **kwargs,
    )
    return deliberation.run(), host


def of_type(host: RecordingHost, event_type: str) -> list[dict[str, Any]]:
    return [data for kind, data in host.events if kind == event_type]


# --------------------------------------------------------------------------- persona library


def test_persona_library_has_forty_personas_over_twelve_domains_with_all_fields() -> None:
    personas = load_personas()
    assert len(personas) >= 40
    assert len({p["domain"] for p in personas}) >= 12
    for persona in personas:
        for name in PERSONA_FIELDS:
            assert persona[name], f"{persona['code']} lacks {name}"
        assert isinstance(persona["expertise"], list) and isinstance(persona["traits"], list)
        assert persona["name"] in persona["system_prompt"]
    codes = [p["code"] for p in personas]
    assert len(codes) == len(set(codes))


def test_moderators_are_the_contrarian_the_skeptic_and_the_optimist() -> None:
    moderators = load_moderators()
    assert set(moderators) == {"contrarian", "skeptic", "optimist"}
    assert not set(moderators) & {p["code"] for p in load_personas()}


def test_loaded_personas_are_copies_that_callers_may_change() -> None:
    load_personas()[0]["name"] = "Changed"
    assert load_personas()[0]["name"] != "Changed"


# --------------------------------------------------------------------------- event order


def expected_sub_problem_events(board: int, rounds: list[bool]) -> list[str]:
    """Event types for one sub-problem; `rounds` lists discussion rounds (True = moderator)."""
    types = ["persona_selected"] * board + ["persona_selection_complete", "initial_round_started"]
    types += ["contribution"] * board
    for moderated in rounds:
        types += ["round_started", "facilitator_decision"]
        types += ["contribution"] * (board + (1 if moderated else 0)) + ["convergence"]
    types += ["voting_started"] + ["persona_vote"] * board + ["voting_complete"]
    return [*types, "synthesis_started", "synthesis_complete"]


def test_offline_run_emits_every_phase_in_order_and_ends_by_consensus() -> None:
    outcome, host = run(max_rounds=6)
    board = len(of_type(host, "persona_selected"))
    assert 3 <= board <= 5
    expected = ["session_started", "decomposition_started", "decomposition_complete"]
    expected += [*expected_sub_problem_events(board, [True, False]), "complete"]
    assert host.types == expected
    assert outcome.status == "completed"
    assert outcome.stop_reason == "consensus"
    assert outcome.pause_reason is None and outcome.clarification_question is None
    assert outcome.final_recommendation
    assert outcome.synthesis_text == of_type(host, "complete")[0]["synthesis"]


def test_every_sub_problem_event_carries_its_index() -> None:
    _, host = run(TWO_QUESTIONS, max_rounds=3)
    for event_type, data in host.events:
        if event_type in PER_SUB_PROBLEM_EVENTS:
            assert "sub_problem_index" in data, event_type
    indexes = [d["sub_problem_index"] for d in of_type(host, "contribution")]
    assert set(indexes) == {0, 1}


def test_event_payloads_have_the_documented_fields() -> None:
    outcome, host = run(max_rounds=6)
    sub_problems = of_type(host, "decomposition_complete")[0]["sub_problems"]
    assert sub_problems == [
        {"index": 0, "goal": sub_problems[0]["goal"], "focus": sub_problems[0]["focus"]}
    ]
    for selected in of_type(host, "persona_selected"):
        assert {"persona_code", "persona_name", "archetype", "domain", "rationale"} <= set(selected)
    for contribution in of_type(host, "contribution"):
        assert {"round", "persona_code", "persona_name", "content"} <= set(contribution)
        assert NOTICE in contribution["content"]
    assert of_type(host, "contribution")[0]["round"] == 1
    decisions = of_type(host, "facilitator_decision")
    assert decisions[0]["action"] == "moderator"
    assert decisions[0]["moderator"] in {"contrarian", "skeptic", "optimist"}
    moderator_turns = [c for c in of_type(host, "contribution") if c["is_moderator"]]
    assert [c["persona_code"] for c in moderator_turns] == [decisions[0]["moderator"]]
    assert decisions[1]["action"] == "continue" and "moderator" not in decisions[1]
    for convergence in of_type(host, "convergence"):
        assert 0 <= convergence["score"] <= 1 and convergence["threshold"] == 0.8
    for vote in of_type(host, "persona_vote"):
        assert {"persona_code", "persona_name", "recommendation", "conditions"} <= set(vote)
        assert 0 <= vote["confidence"] <= 1
        assert all(isinstance(c, str) for c in vote["conditions"])
    assert of_type(host, "voting_complete")[0]["consensus_level"] in {"strong", "moderate", "weak"}
    synthesis = of_type(host, "synthesis_complete")[0]["synthesis"]
    positions = [synthesis.index(f"## {section}") for section in SYNTHESIS_SECTIONS]
    assert positions == sorted(positions)
    complete = of_type(host, "complete")[0]
    assert complete["total_cost"] == str(outcome.total_cost)
    assert complete["total_tokens"] == outcome.total_tokens > 0
    assert complete["stop_reason"] == "consensus"
    assert complete["final_recommendation"] == outcome.final_recommendation


def test_two_rounds_end_at_the_round_limit() -> None:
    outcome, host = run(max_rounds=2)
    assert outcome.stop_reason == "max_rounds"
    assert [d["round"] for d in of_type(host, "round_started")] == [2]
    assert of_type(host, "voting_started")[0]["stop_reason"] == "max_rounds"


def test_one_round_skips_the_discussion() -> None:
    outcome, host = run(max_rounds=1)
    assert outcome.stop_reason == "max_rounds"
    assert "round_started" not in host.types and "convergence" not in host.types
    assert host.types.index("voting_started") > host.types.index("initial_round_started")


@pytest.mark.parametrize("max_rounds", [0, 11, -1, True, 2.5])
def test_max_rounds_outside_one_to_ten_is_rejected(max_rounds: Any) -> None:
    with pytest.raises(ValueError):
        run(max_rounds=max_rounds)


def test_several_sub_problems_end_with_a_meta_synthesis() -> None:
    outcome, host = run(TWO_QUESTIONS, max_rounds=3)
    assert len(of_type(host, "decomposition_complete")[0]["sub_problems"]) == 2
    syntheses = of_type(host, "synthesis_complete")
    assert [s["sub_problem_index"] for s in syntheses] == [0, 1, None]
    assert [s["sub_problem_index"] for s in of_type(host, "synthesis_started")] == [0, 1, None]
    meta = syntheses[-1]
    assert meta["prioritised_actions"]
    assert "## Prioritised actions" in meta["synthesis"]
    assert host.types[-3:] == ["synthesis_started", "synthesis_complete", "complete"]
    assert outcome.synthesis_text == meta["synthesis"]
    assert outcome.final_recommendation == meta["recommendation"]
    assert len(of_type(host, "complete")[0]["sub_problems"]) == 2


def test_offline_runs_are_deterministic_per_problem() -> None:
    _, first = run(max_rounds=3)
    _, second = run(max_rounds=3)
    _, other = run(TWO_QUESTIONS, max_rounds=3)
    assert first.events == second.events
    assert first.events != other.events


def test_offline_latency_slows_each_call() -> None:
    provider = make_provider("offline", offline_latency_ms=40)
    started = time.monotonic()
    provider.complete(
        role="persona", system="s", prompt="TASK: contribute", max_tokens=10, json_mode=False
    )
    assert time.monotonic() - started >= 0.04


# --------------------------------------------------------------------------- checkpoints


def test_every_event_is_followed_by_a_checkpoint_that_counts_it() -> None:
    _, host = run(TWO_QUESTIONS, max_rounds=3)
    assert host.log[-1] == "checkpoint"
    emitted = 0
    for entry in host.log:
        if entry == "event":
            emitted += 1
    counts = [cp["events_emitted"] for cp in host.checkpoints]
    assert counts == sorted(counts) and counts[-1] == emitted == len(host.events)


class RawHost(RecordingHost):
    """Keeps the checkpoint objects exactly as the engine handed them over."""

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoints.append(state)


def test_checkpoints_are_json_and_independent_of_the_engine() -> None:
    host = RawHost()
    received = host.checkpoints
    deliberation = Deliberation(
        problem_statement=ONE_QUESTION,
        problem_context={},
        provider=make_provider("offline"),
        host=host,
        max_rounds=2,
    )
    deliberation.run()
    json.dumps(received)
    received[-1]["results"].clear()
    assert deliberation.state["results"]
    assert deliberation.state["phase"] == "complete"


def resume(
    checkpoint: dict[str, Any], statement: str, host: RecordingHost, **kwargs: Any
) -> Outcome:
    return Deliberation(
        problem_statement=statement,
        problem_context=kwargs.pop("problem_context", {}),
        provider=make_provider("offline"),
        host=host,
        checkpoint=json.loads(json.dumps(checkpoint)),
        **kwargs,
    ).run()


def test_pausing_at_every_boundary_then_continuing_replays_nothing_and_loses_nothing() -> None:
    # Two sub-problems with a moderated round each: every kind of step, and the meta-synthesis.
    baseline_outcome, baseline = run(TWO_QUESTIONS, max_rounds=2)
    boundaries = baseline.stop_calls
    assert boundaries > 40
    for boundary in range(1, boundaries + 1):
        first = RecordingHost(stop_at(boundary))
        paused, _ = run(TWO_QUESTIONS, host=first, max_rounds=2)
        assert (paused.status, paused.pause_reason) == ("paused", "user")
        assert first.log[-1] == "checkpoint"
        second = RecordingHost()
        finished = resume(first.checkpoints[-1], TWO_QUESTIONS, second, max_rounds=2)
        assert first.events + second.events == baseline.events, f"paused at {boundary}"
        assert finished == baseline_outcome


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6))
def test_any_sequence_of_pauses_yields_the_uninterrupted_transcript(gaps: list[int]) -> None:
    baseline_outcome, baseline = run(ONE_QUESTION, max_rounds=4)
    events: list[tuple[str, dict[str, Any]]] = []
    checkpoint: dict[str, Any] | None = None
    outcome: Outcome | None = None
    for gap in [*gaps, None]:
        host = RecordingHost(stop_at(gap) if gap is not None else None)
        outcome = Deliberation(
            problem_statement=ONE_QUESTION,
            problem_context={},
            provider=make_provider("offline"),
            host=host,
            max_rounds=4,
            checkpoint=checkpoint,
        ).run()
        events += host.events
        checkpoint = host.checkpoints[-1] if host.checkpoints else checkpoint
        if outcome.status == "completed":
            break
    assert outcome == baseline_outcome
    assert events == baseline.events


def test_kill_stops_at_once_and_emits_nothing_more() -> None:
    _, baseline = run(max_rounds=3)
    for boundary in (1, 5, baseline.stop_calls // 2, baseline.stop_calls):
        host = RecordingHost(stop_at(boundary, "kill"))
        outcome, _ = run(host=host, max_rounds=3)
        assert outcome.status == "killed"
        assert host.stop_calls == boundary
        assert host.events == baseline.events[: len(host.events)]
        assert host.log[-1:] in ([], ["checkpoint"])


def test_a_completed_checkpoint_returns_the_result_without_new_events() -> None:
    outcome, host = run(max_rounds=2)
    again = RecordingHost()
    assert resume(host.checkpoints[-1], ONE_QUESTION, again, max_rounds=2) == outcome
    assert again.events == []


def test_unsupported_checkpoint_version_is_rejected() -> None:
    with pytest.raises(ValueError):
        run(checkpoint={"version": 99})


# --------------------------------------------------------------------------- budget and costs


def test_reaching_the_budget_pauses_and_a_larger_budget_continues() -> None:
    baseline_outcome, baseline = run(max_rounds=3)
    outcome, first = run(max_rounds=3, max_cost=Decimal("0.001"))
    assert (outcome.status, outcome.pause_reason) == ("paused", "budget")
    assert outcome.total_cost >= Decimal("0.001")
    assert first.log[-1] == "checkpoint"

    # Resuming on the same budget spends nothing more: it stops before the next call.
    same_budget = RecordingHost()
    again = resume(
        first.checkpoints[-1], ONE_QUESTION, same_budget, max_rounds=3, max_cost=Decimal("0.001")
    )
    assert (again.status, again.pause_reason) == ("paused", "budget")
    assert again.total_cost == outcome.total_cost
    assert same_budget.checkpoints[-1]["calls"] == first.checkpoints[-1]["calls"]

    second = RecordingHost()
    finished = resume(
        same_budget.checkpoints[-1], ONE_QUESTION, second, max_rounds=3, max_cost=Decimal("5")
    )
    assert finished == baseline_outcome
    # Only session_started differs: it records the budget the session started with.
    combined = first.events + same_budget.events + second.events
    assert combined[0][1]["max_cost"] == "0.001"
    assert combined[1:] == baseline.events[1:]


def test_costs_and_tokens_per_phase_add_up_to_the_totals() -> None:
    outcome, host = run(TWO_QUESTIONS, max_rounds=3)
    state = host.checkpoints[-1]
    by_phase = {phase: Decimal(cost) for phase, cost in state["costs_by_phase"].items()}
    assert set(by_phase) == {
        "decomposition",
        "selection",
        "initial_round",
        "discussion",
        "voting",
        "synthesis",
    }
    assert sum(by_phase.values()) == outcome.total_cost == Decimal(state["total_cost"])
    assert sum(state["tokens_by_phase"].values()) == outcome.total_tokens
    assert sum(Decimal(call["cost"]) for call in state["call_log"]) == outcome.total_cost
    assert len(state["call_log"]) == state["calls"]
    assert of_type(host, "complete")[0]["costs_by_phase"] == state["costs_by_phase"]
    assert outcome.total_cost.as_tuple().exponent == -6
    assert Decimal(0) < outcome.total_cost < Decimal("1.00")


def test_every_default_model_has_a_price() -> None:
    for models in DEFAULT_MODELS.values():
        for model in models.values():
            assert model in PRICES
    assert DEFAULT_MODELS["offline"]["persona"] == "offline-rehearsal"
    assert DEFAULT_MODELS["anthropic"]["persona"].startswith("claude-sonnet-4")
    assert "haiku" in DEFAULT_MODELS["anthropic"]["selector"]
    assert DEFAULT_MODELS["openai"]["persona"] == "gpt-4o"
    assert DEFAULT_MODELS["openai"]["facilitator"] == "gpt-4o-mini"


def test_cost_counts_cached_and_cache_written_tokens_at_their_own_prices() -> None:
    plain = Completion("x", 1_000_000, 1_000_000, 0, "claude-sonnet-4-5")
    assert completion_cost(plain) == Decimal("18.000000")
    cached = Completion("x", 1_000_000, 0, 1_000_000, "claude-sonnet-4-5")
    assert completion_cost(cached) == Decimal("0.300000")
    written = Completion("x", 1_000_000, 0, 0, "claude-sonnet-4-5", cache_write_tokens=1_000_000)
    assert completion_cost(written) == Decimal("3.750000")
    dated = Completion("x", 1_000_000, 0, 0, "gpt-4o-2024-08-06")
    assert completion_cost(dated) == Decimal("2.500000")
    routed = Completion("x", 1_000_000, 0, 0, "openai/gpt-4o-mini")
    assert completion_cost(routed) == Decimal("0.150000")
    assert completion_cost(Completion("x", 10, 10, 0, "llama3.1:8b")) == Decimal("0.000000")


# --------------------------------------------------------------------------- clarification


def test_a_vague_problem_pauses_for_clarification_and_continues_with_the_answer() -> None:
    outcome, first = run(SHORT, max_rounds=2)
    assert (outcome.status, outcome.pause_reason) == ("paused", "clarification")
    assert outcome.clarification_question
    assert first.types[-1] == "clarification_requested"
    assert first.events[-1][1] == {"question": outcome.clarification_question}
    assert first.log[-1] == "checkpoint"

    waiting = RecordingHost()
    still = resume(first.checkpoints[-1], SHORT, waiting, max_rounds=2)
    assert (still.pause_reason, waiting.events) == ("clarification", [])

    recorder = PromptRecorder(make_provider("offline"))
    second = RecordingHost()
    finished = Deliberation(
        problem_statement=SHORT,
        problem_context={},
        provider=recorder,
        host=second,
        max_rounds=2,
        checkpoint=first.checkpoints[-1],
        clarification_answers=["We have budget for two engineers this year."],
    ).run()
    assert finished.status == "completed"
    assert "clarification_requested" not in second.types
    assert second.types[0] == "decomposition_complete"
    assert all("two engineers" in system for system in recorder.systems)


def test_a_short_problem_with_context_needs_no_clarification() -> None:
    outcome, host = run(SHORT, problem_context={"team_size": 4}, max_rounds=1)
    assert outcome.status == "completed"
    assert "clarification_requested" not in host.types


# --------------------------------------------------------------------------- fallbacks


class PromptRecorder:
    """Wraps a provider and keeps the system texts it was given."""

    name = "recorder"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.systems: list[str] = []

    def complete(self, **kwargs: Any) -> Completion:
        self.systems.append(kwargs["system"])
        result: Completion = self.inner.complete(**kwargs)
        return result


class ScriptedProvider:
    """Answers each TASK with a fixed text, or with a function of the prompt."""

    name = "scripted"

    def __init__(self, answers: dict[str, str | Callable[[str], str]], default: str = "") -> None:
        self.answers = answers
        self.default = default
        self.calls: list[str] = []

    def complete(
        self, *, role: str, system: str, prompt: str, max_tokens: int, json_mode: bool
    ) -> Completion:
        task = header_value(prompt, "TASK") or ""
        self.calls.append(task)
        answer = self.answers.get(task, self.default)
        text = answer(prompt) if callable(answer) else answer
        return Completion(text, 100, 20, 0, "scripted-model")


def test_unreadable_output_everywhere_still_completes_with_sane_defaults() -> None:
    provider = ScriptedProvider({}, default="I am not sure; there are many considerations here.")
    outcome, host = run(ONE_QUESTION, provider=provider, max_rounds=3)
    assert outcome.status == "completed"
    sub_problems = of_type(host, "decomposition_complete")[0]["sub_problems"]
    assert len(sub_problems) == 1 and sub_problems[0]["goal"] == ONE_QUESTION
    selected = of_type(host, "persona_selected")
    assert len(selected) == 4 and len({s["domain"] for s in selected}) == 4
    assert {d["action"] for d in of_type(host, "facilitator_decision")} == {"continue"}
    assert outcome.stop_reason == "max_rounds"
    for vote in of_type(host, "persona_vote"):
        assert vote["confidence"] == 0.5
        assert vote["recommendation"].startswith("I am not sure")
    synthesis = outcome.synthesis_text
    for section in SYNTHESIS_SECTIONS:
        assert f"## {section}" in synthesis
    assert "could not be read" in synthesis


def test_json_in_prose_fences_and_loose_fields_is_understood() -> None:
    codes = ["finance_cfo", "legal_counsel", "sales_vp", "people_chro"]
    provider = ScriptedProvider(
        {
            "decompose": 'Sure! ```json\n{"subproblems": ["Price level?", {"question": "Timing?"}]}'
            "\n```",
            "select": json.dumps({"selected": ["Helena Marsh", *codes[1:], "unknown_code"]}),
            "facilitate": 'My call: {"decision": "Vote now", "why": "Positions are clear"}',
            "vote": '{"vote": "Raise prices in two steps", "confidence": "80%", '
            '"conditions": "churn stays flat; competitors hold"} thanks',
            "synthesize": "# Report\n**Summary**\nShort.\n"
            "### Our recommendation\nRaise in two steps.\n",
            "meta_synthesize": "no headings at all",
        },
        default="Plain contribution.",
    )
    outcome, host = run(ONE_QUESTION, provider=provider, max_rounds=5)
    goals = [s["goal"] for s in of_type(host, "decomposition_complete")[0]["sub_problems"]]
    assert goals == ["Price level?", "Timing?"]
    assert of_type(host, "persona_selection_complete")[0]["persona_codes"] == codes
    assert of_type(host, "facilitator_decision")[0]["action"] == "vote"
    assert "convergence" not in host.types
    vote = of_type(host, "persona_vote")[0]
    assert (vote["recommendation"], vote["confidence"]) == ("Raise prices in two steps", 0.8)
    assert vote["conditions"] == ["churn stays flat", "competitors hold"]
    first_synthesis = of_type(host, "synthesis_complete")[0]
    assert first_synthesis["recommendation"] == "Raise in two steps."
    assert outcome.stop_reason == "consensus"
    assert "## Prioritised actions" in outcome.synthesis_text


def test_too_many_sub_problems_are_capped_at_five() -> None:
    many = json.dumps({"sub_problems": [{"goal": f"Part {n}"} for n in range(8)]})
    provider = ScriptedProvider({"decompose": many}, default="x")
    _, host = run(ONE_QUESTION, provider=provider, max_rounds=1)
    assert len(of_type(host, "decomposition_complete")[0]["sub_problems"]) == 5


def test_convergence_scores_are_read_from_prose_and_percentages() -> None:
    provider = ScriptedProvider(
        {"convergence": "I would put the score at 85% overall."}, default="x"
    )
    outcome, host = run(ONE_QUESTION, provider=provider, max_rounds=5)
    assert [c["score"] for c in of_type(host, "convergence")] == [0.85]
    assert outcome.stop_reason == "consensus"


def test_a_custom_persona_library_is_used_for_selection() -> None:
    library = load_personas()[:3]
    outcome, host = run(ONE_QUESTION, personas=library, max_rounds=1)
    assert outcome.status == "completed"
    chosen = set(of_type(host, "persona_selection_complete")[0]["persona_codes"])
    assert chosen == {p["code"] for p in library}


# --------------------------------------------------------------------------- provider failures


class FailingProvider:
    """Offline answers until call number `fail_at`, then a provider error."""

    name = "offline"

    def __init__(self, fail_at: int) -> None:
        self.inner = make_provider("offline")
        self.fail_at = fail_at
        self.calls = 0

    def complete(self, **kwargs: Any) -> Completion:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ProviderError("timeout", "The model did not answer in time")
        result: Completion = self.inner.complete(**kwargs)
        return result


def test_a_provider_error_propagates_and_the_run_resumes_from_the_last_checkpoint() -> None:
    baseline_outcome, baseline = run(max_rounds=3)
    host = RecordingHost()
    with pytest.raises(ProviderError) as caught:
        run(host=host, provider=FailingProvider(fail_at=7), max_rounds=3)
    assert caught.value.code == "timeout"
    assert host.log[-1] == "checkpoint"
    second = RecordingHost()
    assert resume(host.checkpoints[-1], ONE_QUESTION, second, max_rounds=3) == baseline_outcome
    assert host.events + second.events == baseline.events


def test_unknown_provider_names_are_rejected() -> None:
    with pytest.raises(ValueError):
        make_provider("gemini")
    with pytest.raises(ValueError):
        make_provider("offline", models={"juggler": "x"})
    assert make_provider("OFFLINE", models={"persona": "custom"}).models["persona"] == "custom"  # type: ignore[attr-defined]
