"""The control API: start, pause, resume, kill, clarify, and the events page."""

import time
from decimal import Decimal

import pytest
import redis
from django.conf import settings

from bo1site.celery import app as celery_app
from sessions_app.models import DeliberationSession, PauseReason, SessionEvent, Status
from sessions_app.services import NewEvent, session_transition
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(user):
    return SessionFactory(user=user)


@pytest.fixture
def broker_down(monkeypatch):
    """Point the task queue at a closed port."""
    connect = celery_app.connection_for_write
    monkeypatch.setattr(
        celery_app, "connection_for_write", lambda **kw: connect(url="redis://127.0.0.1:9/0", **kw)
    )


@pytest.fixture
def queued_tasks(clean_redis):
    """How many run tasks wait in the test broker's default queue."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield lambda: client.llen("celery")
    client.flushdb()


def set_status(session, *path, **kw):
    for status in path:
        session_transition(session_id=session.id, to=status, **kw)


def test_start_queues_the_session_and_publishes_one_task_after_commit(
    api, session, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/sessions/{session.id}/start")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == Status.QUEUED
    assert DeliberationSession.objects.get(pk=session.id).status == Status.QUEUED
    assert queued_tasks() == 1


def test_start_twice_is_409_with_the_current_status(api, session):
    assert api.post(f"/api/v1/sessions/{session.id}/start").status_code == 202
    response = api.post(f"/api/v1/sessions/{session.id}/start")
    assert response.status_code == 409
    assert response.json()["status"] == Status.QUEUED


def test_start_with_the_broker_down_is_503_fast_and_leaves_the_session_created(
    api, session, broker_down
):
    began = time.monotonic()
    response = api.post(f"/api/v1/sessions/{session.id}/start")
    assert response.status_code == 503
    assert "reason" in response.json()
    assert time.monotonic() - began < 5
    assert DeliberationSession.objects.get(pk=session.id).status == Status.CREATED
    assert not SessionEvent.objects.filter(session=session).exists()


@pytest.mark.parametrize("action", ["start", "pause", "resume", "kill", "clarify"])
def test_control_of_another_users_session_is_404(other_api, session, action):
    response = other_api.post(f"/api/v1/sessions/{session.id}/{action}", {"answer": "x"})
    assert response.status_code == 404


@pytest.mark.parametrize("action", ["start", "pause", "resume", "kill", "clarify"])
def test_control_without_credentials_is_401(anon, session, action):
    assert anon.post(f"/api/v1/sessions/{session.id}/{action}").status_code == 401


def test_pause_is_409_unless_running(api, session):
    response = api.post(f"/api/v1/sessions/{session.id}/pause")
    assert response.status_code == 409
    assert response.json()["status"] == Status.CREATED


def test_pause_a_running_session_records_reason_user_and_a_paused_event(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING)
    response = api.post(f"/api/v1/sessions/{session.id}/pause")
    assert response.status_code == 202
    row = DeliberationSession.objects.get(pk=session.id)
    assert (row.status, row.pause_reason) == (Status.PAUSED, PauseReason.USER)
    assert list(
        SessionEvent.objects.filter(session=session).values_list("event_type", flat=True)
    ) == ["paused"]


def test_resume_requeues_a_paused_session_with_a_resumed_event(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING)
    api.post(f"/api/v1/sessions/{session.id}/pause")
    response = api.post(f"/api/v1/sessions/{session.id}/resume")
    assert response.status_code == 202
    assert DeliberationSession.objects.get(pk=session.id).status == Status.QUEUED
    assert SessionEvent.objects.filter(session=session).last().event_type == "resumed"


def test_resume_after_a_budget_pause_grants_one_more_allowance(api, session, settings):
    settings.BO1_MAX_COST_PER_SESSION = Decimal("0.50")
    set_status(session, Status.QUEUED, Status.RUNNING)
    DeliberationSession.objects.filter(pk=session.id).update(total_cost=Decimal("0.51"))
    session_transition(session_id=session.id, to=Status.PAUSED, pause_reason=PauseReason.BUDGET)
    assert api.post(f"/api/v1/sessions/{session.id}/resume").status_code == 202
    assert DeliberationSession.objects.get(pk=session.id).cost_limit == Decimal("1.01")


def test_resume_with_a_negative_extra_budget_is_400(api, session):
    response = api.post(
        f"/api/v1/sessions/{session.id}/resume", {"extra_budget": "-1"}, format="json"
    )
    assert response.status_code == 400
    assert "extra_budget" in response.json()


@pytest.mark.parametrize("status", [Status.CREATED, Status.QUEUED, Status.RUNNING, Status.PAUSED])
def test_kill_stops_any_unfinished_session_with_the_reason(api, session, status):
    path = [Status.QUEUED, Status.RUNNING, Status.PAUSED]
    for step in path[: path.index(status) + 1] if status != Status.CREATED else []:
        session_transition(session_id=session.id, to=step, pause_reason=PauseReason.USER)
    response = api.post(
        f"/api/v1/sessions/{session.id}/kill", {"reason": "changed my mind"}, format="json"
    )
    assert response.status_code == 202
    assert DeliberationSession.objects.get(pk=session.id).status == Status.KILLED
    event = SessionEvent.objects.filter(session=session).last()
    assert (event.event_type, event.data["reason"]) == ("killed", "changed my mind")


def test_kill_a_finished_session_is_409(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING, Status.COMPLETED)
    response = api.post(f"/api/v1/sessions/{session.id}/kill")
    assert response.status_code == 409
    assert response.json()["status"] == Status.COMPLETED


def test_clarify_answers_the_pending_question_and_requeues(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING)
    session_transition(
        session_id=session.id,
        to=Status.PAUSED,
        pause_reason=PauseReason.CLARIFICATION,
        fields={"clarification_question": "What is the budget?"},
    )
    response = api.post(
        f"/api/v1/sessions/{session.id}/clarify", {"answer": "  About 2M EUR  "}, format="json"
    )
    assert response.status_code == 202, response.content
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.status == Status.QUEUED
    assert row.problem_context["clarifications"] == [
        {"question": "What is the budget?", "answer": "About 2M EUR"}
    ]
    event = SessionEvent.objects.filter(session=session).last()
    assert event.event_type == "clarification_answered"


def test_clarify_without_a_pending_question_is_409(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING)
    api.post(f"/api/v1/sessions/{session.id}/pause")
    response = api.post(f"/api/v1/sessions/{session.id}/clarify", {"answer": "x"}, format="json")
    assert response.status_code == 409


@pytest.mark.parametrize("answer", ["   ", 5, True, None, ["x"]])
def test_clarify_with_an_empty_or_non_text_answer_is_400(api, session, answer):
    response = api.post(f"/api/v1/sessions/{session.id}/clarify", {"answer": answer}, format="json")
    assert response.status_code == 400
    assert "answer" in response.json()


def test_delete_of_a_running_session_kills_it_first(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING)
    assert api.delete(f"/api/v1/sessions/{session.id}").status_code == 204
    types = list(SessionEvent.objects.filter(session=session).values_list("event_type", flat=True))
    assert types == ["killed"]
    assert DeliberationSession.objects.get(pk=session.id).status == Status.DELETED


def test_events_page_after_n(api, session):
    set_status(session, Status.QUEUED, Status.RUNNING)
    from sessions_app.services import session_record_progress

    session_record_progress(
        session_id=session.id, events=[NewEvent("contribution", {"n": i}) for i in range(5)]
    )
    body = api.get(f"/api/v1/sessions/{session.id}/events?after=2").json()
    assert body["session_id"] == session.id
    assert [e["sequence"] for e in body["events"]] == [3, 4, 5]
    assert body["count"] == 3
    assert api.get(f"/api/v1/sessions/{session.id}/events?after=-1").status_code == 400


def test_a_kill_reason_that_is_not_text_is_a_400_on_the_field(api, user):
    session = SessionFactory(user=user)
    answer = api.post(f"/api/v1/sessions/{session.id}/kill", {"reason": -3.44e16}, format="json")
    assert answer.status_code == 400
    assert "reason" in answer.json()
    session.refresh_from_db()
    assert session.status == "created"
