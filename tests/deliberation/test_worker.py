"""End to end: a real Celery worker process on the real Redis broker runs deliberations."""

import time
from collections import Counter

import pytest

from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.processes import start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROBLEM = "Should our 40-person software company expand into the German market next year?"


def wait_until(predicate, timeout=90.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def row(session_id):
    return DeliberationSession.objects.get(pk=session_id)


def events(session_id):
    return list(SessionEvent.objects.filter(session_id=session_id).order_by("sequence"))


def assert_contiguous_without_duplicate_contributions(session_id):
    evs = events(session_id)
    assert [e.sequence for e in evs] == list(range(1, len(evs) + 1))
    contributions = Counter(
        (e.data.get("sub_problem_index"), e.data["round"], e.data["persona_code"])
        for e in evs
        if e.event_type == "contribution"
    )
    assert contributions, "no contribution at all"
    assert max(contributions.values()) == 1, contributions.most_common(3)
    return evs


def create_and_start(api, max_rounds=3):
    created = api.post(
        "/api/v1/sessions", {"problem_statement": PROBLEM, "max_rounds": max_rounds}, format="json"
    )
    assert created.status_code == 201, created.content
    session_id = created.json()["id"]
    started = api.post(f"/api/v1/sessions/{session_id}/start")
    assert started.status_code == 202, started.content
    return session_id


@pytest.fixture
def worker():
    process = start_worker(BO1_LEASE_TTL="3", BO1_REAPER_INTERVAL="1")
    yield process
    process.stop()


@pytest.fixture
def slow_worker():
    process = start_worker(
        name="slow-worker", BO1_OFFLINE_LATENCY_MS="150", BO1_LEASE_TTL="3", BO1_REAPER_INTERVAL="1"
    )
    yield process
    process.stop()


def test_start_runs_to_completed_with_synthesis_in_postgres_and_redis(api, worker):
    session_id = create_and_start(api)
    wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed")
    # The hot entry is rewritten just after the commit that PostgreSQL already shows.
    wait_until(
        lambda: (SessionCache.get(session_id) or {}).get("status") == Status.COMPLETED,
        timeout=10,
        what="hot entry completed",
    )
    session = row(session_id)
    assert session.synthesis_text and session.final_recommendation
    assert session.started_at and session.completed_at and session.total_tokens > 0
    assert session.phase == "complete"
    hot = SessionCache.get(session_id)
    assert hot["status"] == Status.COMPLETED and hot["synthesis"] == session.synthesis_text
    evs = assert_contiguous_without_duplicate_contributions(session_id)
    assert evs[0].event_type == "session_started" and evs[-1].event_type == "complete"
    assert evs[-1].data["synthesis"]
    detail = api.get(f"/api/v1/sessions/{session_id}").json()
    assert detail["status"] == Status.COMPLETED and detail["personas"]


def test_kill_in_the_middle_stops_the_worker_and_nothing_follows_the_killed_event(api, slow_worker):
    session_id = create_and_start(api, max_rounds=6)
    wait_until(lambda: row(session_id).contribution_count >= 2, what="contributions")
    response = api.post(f"/api/v1/sessions/{session_id}/kill", {"reason": "enough"}, format="json")
    assert response.status_code == 202
    time.sleep(1.5)  # ten offline calls' worth: the worker had every chance to write more
    evs = events(session_id)
    assert evs[-1].event_type == "killed"
    assert row(session_id).status == Status.KILLED
    assert "killed by user" not in evs[-1].data["reason"]


def test_pause_then_resume_continues_from_the_checkpoint_to_completed(api, slow_worker):
    session_id = create_and_start(api, max_rounds=3)
    wait_until(lambda: row(session_id).contribution_count >= 2, what="contributions")
    assert api.post(f"/api/v1/sessions/{session_id}/pause").status_code == 202
    time.sleep(1.0)
    paused_events = events(session_id)
    assert paused_events[-1].event_type == "paused"
    assert row(session_id).status == Status.PAUSED
    assert api.post(f"/api/v1/sessions/{session_id}/resume").status_code == 202
    wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed after resume")
    evs = assert_contiguous_without_duplicate_contributions(session_id)
    types = [e.event_type for e in evs]
    assert types.count("session_started") == 1
    assert types.index("paused") < types.index("resumed") < types.index("complete")


def test_a_worker_killed_hard_mid_run_is_replaced_and_the_session_finishes_once(api):
    first = start_worker(
        name="doomed-worker",
        BO1_OFFLINE_LATENCY_MS="150",
        BO1_LEASE_TTL="3",
        BO1_REAPER_INTERVAL="1",
    )
    try:
        session_id = create_and_start(api, max_rounds=3)
        wait_until(lambda: row(session_id).contribution_count >= 3, what="contributions")
    finally:
        first.kill_hard()
    before = len(events(session_id))
    assert row(session_id).status == Status.RUNNING
    second = start_worker(name="rescue-worker", BO1_LEASE_TTL="3", BO1_REAPER_INTERVAL="1")
    try:
        wait_until(lambda: row(session_id).status == Status.COMPLETED, what="rescued to completed")
    finally:
        second.stop()
    evs = assert_contiguous_without_duplicate_contributions(session_id)
    assert len(evs) > before
    assert [e.event_type for e in evs].count("session_started") == 1
    assert "Picking up session" in second.log()
