"""The one event vocabulary matches what the engine, the runner and the store really do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vocabulary
from deliberation.engine import Deliberation, make_provider
from sessions_app.models import Phase, Status
from tests.deliberation.test_engine import (
    ONE_QUESTION,
    TWO_QUESTIONS,
    RecordingHost,
)

ROOT = Path(__file__).resolve().parents[2]


def _run(statement: str, **kwargs) -> RecordingHost:
    host = RecordingHost()
    Deliberation(
        problem_statement=statement,
        problem_context={},
        provider=make_provider("offline"),
        host=host,
        **kwargs,
    ).run()
    return host


@pytest.mark.parametrize("statement", [ONE_QUESTION, TWO_QUESTIONS], ids=["one", "several"])
def test_every_event_the_engine_emits_carries_exactly_its_declared_fields(statement):
    host = _run(statement, max_rounds=3)
    assert host.events
    for event_type, data in host.events:
        assert event_type in vocabulary.ENGINE_EVENTS, event_type
        spec = vocabulary.EVENTS[event_type]
        assert not vocabulary.missing_fields(event_type, data), (event_type, data)
        assert set(data) <= set(spec.fields) | set(spec.optional), (event_type, sorted(data))


def test_a_clarification_request_carries_its_declared_fields():
    host = _run("Should we hire more?", max_rounds=1)
    requested = [d for t, d in host.events if t == vocabulary.EventType.CLARIFICATION_REQUESTED]
    for data in requested:
        assert not vocabulary.missing_fields(vocabulary.EventType.CLARIFICATION_REQUESTED, data)


def test_the_store_s_choices_are_the_vocabulary_s_values():
    assert Status.values == [str(s) for s in vocabulary.Status]
    assert Phase.values == [str(p) for p in vocabulary.PHASES]
    assert Status.RUNNING == vocabulary.Status.RUNNING


def test_the_stream_ends_on_the_events_after_which_nothing_is_emitted():
    assert {"complete", "error", "killed"} == vocabulary.TERMINAL_EVENTS
    # Every engine event moves the session into a phase; lifecycle events do not.
    assert {
        "error",
        "paused",
        "resumed",
        "killed",
        "clarification_answered",
    } == vocabulary.CONTROL_EVENTS


def test_the_page_scripts_get_the_vocabulary_from_the_server_and_keep_no_copy():
    for script in ("session.js", "sessions.js"):
        text = (ROOT / "dashboard/static/dashboard" / script).read_text()
        assert 'getElementById("vocabulary")' in text
        # Names only a copied list would spell (the handlers name the events they handle).
        for name in ("initial_round", "decomposition_started", "synthesis_started", "deleted"):
            assert f'"{name}"' not in text, (script, name)


def _spelt_names(path: Path) -> list[str]:
    """Event types and phases written as string literals where events are emitted or phases set."""
    spelt = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        values = [kw.value for kw in node.keywords if kw.arg in ("phase", "event_type")]
        if name in ("emit", "_emit", "NewEvent", "_set_phase") and node.args:
            values.append(node.args[0])
        spelt += [v.value for v in values if isinstance(v, ast.Constant)]
    return spelt


@pytest.mark.parametrize(
    "module",
    [
        "deliberation/engine/engine.py",
        "deliberation/runner.py",
        "deliberation/services.py",
        "dashboard/views.py",
    ],
)
def test_events_are_emitted_and_phases_set_through_the_vocabulary(module):
    assert _spelt_names(ROOT / module) == []
