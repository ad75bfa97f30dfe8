"""The runner in-process: engine events become contiguous session events, statuses follow."""

from decimal import Decimal

import pytest

from deliberation.lease import Lease, lease_key
from deliberation.outbox import Outbox, OutboxOp, outbox_key
from deliberation.runner import run_session
from deliberation.services import deliberation_clarify
from sessions_app.cache import SessionCache, redis_client, stream_key
from sessions_app.models import DeliberationSession, PauseReason, SessionEvent, Status
from sessions_app.services import NewEvent, session_transition
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "Should our 40-person software company expand into the German market next year?"


def queued_session(user, **kwargs):
    session = SessionFactory(user=user, problem_statement=PROBLEM, max_rounds=3, **kwargs)
    session_transition(session_id=session.id, to=Status.QUEUED)
    return session


def types(session):
    return list(
        SessionEvent.objects.filter(session=session)
        .order_by("sequence")
        .values_list("event_type", flat=True)
    )


def test_a_queued_session_runs_to_completed_with_everything_recorded(user):
    session = queued_session(user)
    assert run_session(session.id) == Status.COMPLETED
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.status == Status.COMPLETED and row.phase == "complete"
    assert row.synthesis_text and row.final_recommendation
    assert row.total_cost > 0 and row.total_tokens > 0 and row.costs_by_phase
    assert 3 <= len(row.personas) <= 5 * 5
    assert row.contribution_count == types(session).count("contribution")
    events = list(SessionEvent.objects.filter(session=session).order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].event_type == "session_started" and events[-1].event_type == "complete"
    assert row.last_sequence == len(events)
    assert row.checkpoint["emitted"] == len(events)
    hot = SessionCache.get(session.id)
    assert hot["status"] == Status.COMPLETED and hot["event_count"] == len(events)
    streamed = redis_client().xrange(stream_key(session.id))
    assert len(streamed) == len(events)


def test_a_second_delivery_of_a_finished_session_does_nothing(user):
    session = queued_session(user)
    run_session(session.id)
    count = SessionEvent.objects.filter(session=session).count()
    assert run_session(session.id) == "skipped"
    assert SessionEvent.objects.filter(session=session).count() == count


def test_a_session_whose_lease_is_held_elsewhere_is_left_alone(user):
    session = queued_session(user)
    other = Lease(session.id, ttl=30)
    assert other.acquire()
    try:
        assert run_session(session.id) == "busy"
        assert DeliberationSession.objects.get(pk=session.id).status == Status.QUEUED
    finally:
        other.release()
    assert not redis_client().exists(lease_key(session.id))


def test_the_budget_pauses_the_session_and_resume_grants_more(user, settings):
    settings.BO1_MAX_COST_PER_SESSION = Decimal("0.002")
    session = queued_session(user)
    assert run_session(session.id) == Status.PAUSED
    row = DeliberationSession.objects.get(pk=session.id)
    assert (row.status, row.pause_reason) == (Status.PAUSED, PauseReason.BUDGET)
    assert types(session)[-1] == "paused"
    assert row.total_cost >= Decimal("0.002")


def test_a_clarification_pauses_then_the_answer_lets_it_finish(user):
    session = SessionFactory(user=user, problem_statement="Should I quit?", max_rounds=2)
    session_transition(session_id=session.id, to=Status.QUEUED)
    assert run_session(session.id) == Status.PAUSED
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.pause_reason == PauseReason.CLARIFICATION and row.clarification_question
    assert SessionCache.get(session.id)["pending_clarification"] == row.clarification_question
    deliberation_clarify(session_id=session.id, answer="I have six months of savings.")
    assert run_session(session.id) == Status.COMPLETED
    kinds = types(session)
    assert kinds.count("clarification_requested") == 1
    assert kinds.index("clarification_answered") < kinds.index("complete")
    assert DeliberationSession.objects.get(pk=session.id).clarification_question == ""


def test_kept_writes_from_a_dead_worker_are_applied_before_continuing(user):
    session = queued_session(user)
    session_transition(session_id=session.id, to=Status.RUNNING)
    kept = Outbox(session.id)
    kept.put(OutboxOp.progress([NewEvent("session_started", {}, "engine:1")], {}))
    kept._save_mirror()
    assert redis_client().llen(outbox_key(session.id)) == 1
    # The kept event is applied first; the engine, starting from no checkpoint, emits its own
    # session_started with the same key, which must not be written twice.
    assert run_session(session.id) == Status.COMPLETED
    assert types(session).count("session_started") == 1
    assert not redis_client().exists(outbox_key(session.id))


KEY = "sk-ant-test-SECRET-0123456789abcdef"


@pytest.fixture
def fake_llm():
    from tests.deliberation.fake_llm import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_an_sdk_provider_completes_a_session_with_costs_from_usage(
    user, settings, monkeypatch, fake_llm, provider
):
    settings.BO1_LLM_PROVIDER = provider
    monkeypatch.setenv(f"{provider.upper()}_API_KEY", KEY)
    url = fake_llm.url if provider == "anthropic" else fake_llm.openai_url
    monkeypatch.setenv(f"{provider.upper()}_BASE_URL", url)
    session = queued_session(user)
    assert run_session(session.id) == Status.COMPLETED
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.total_tokens > 0 and row.total_cost > 0
    assert {r.api for r in fake_llm.requests} == {provider}


@pytest.mark.parametrize(
    ("mode", "code"), [("auth_error", "auth"), ("server_error", "provider_error")]
)
def test_a_persisting_provider_error_fails_the_session_with_its_code_and_never_the_key(
    user, settings, monkeypatch, fake_llm, mode, code
):
    fake_llm.mode = mode
    settings.BO1_LLM_PROVIDER = "anthropic"
    settings.BO1_LLM_MAX_RETRIES = 1
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.url)
    session = queued_session(user)
    assert run_session(session.id) == Status.FAILED
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.status == Status.FAILED and row.error["code"] == code and row.error["message"]
    assert KEY not in str(row.error)
    last = SessionEvent.objects.filter(session=session).order_by("sequence").last()
    assert last.event_type == "error" and last.data["code"] == code
    assert KEY not in str(list(SessionEvent.objects.filter(session=session).values("data")))
    assert SessionCache.get(session.id)["error"]["code"] == code
