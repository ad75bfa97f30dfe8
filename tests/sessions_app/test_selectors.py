"""Reads: the list from PostgreSQL enriched from Redis, the detail from Redis or PostgreSQL."""

import logging
from datetime import UTC, datetime

import pytest
from django_redis import get_redis_connection

from sessions_app import selectors
from sessions_app.cache import SessionCache
from sessions_app.models import Status
from sessions_app.selectors import (
    session_detail_for_user,
    session_events_after,
    session_list_for_user,
)
from sessions_app.services import NewEvent, session_record_progress
from sessions_app.snapshots import session_snapshot
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

NOON_UTC = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_sessions(user, count, **fields):
    return [SessionFactory(user=user, **fields) for _ in range(count)]


@pytest.fixture
def redis_commands(monkeypatch):
    """The names of the Redis commands the cache client sends during the test."""
    client = get_redis_connection("default")
    sent: list[str] = []
    original = client.execute_command

    def execute_command(*args, **kwargs):
        sent.append(str(args[0]).upper())
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", execute_command)
    return sent


# --- list ---------------------------------------------------------------------------------------


def test_list_is_newest_first(user):
    sessions = make_sessions(user, 4)
    page = session_list_for_user(user=user)
    assert [s["id"] for s in page.sessions] == [s.id for s in reversed(sessions)]


def test_list_shows_only_the_users_own_sessions(user, other_user):
    mine = make_sessions(user, 2)
    make_sessions(other_user, 3)
    page = session_list_for_user(user=user)
    assert {s["id"] for s in page.sessions} == {s.id for s in mine}
    assert page.total == 2


def test_list_filters_on_status(user):
    make_sessions(user, 2)
    running = make_sessions(user, 3, status=Status.RUNNING)
    page = session_list_for_user(user=user, status=Status.RUNNING)
    assert {s["id"] for s in page.sessions} == {s.id for s in running}
    assert page.total == 3


def test_list_hides_deleted_sessions_even_when_filtering_for_them(user):
    kept = make_sessions(user, 2)
    make_sessions(user, 2, status=Status.DELETED)
    page = session_list_for_user(user=user)
    assert {s["id"] for s in page.sessions} == {s.id for s in kept}
    assert page.total == 2
    assert session_list_for_user(user=user, status=Status.DELETED).sessions == []


def test_list_pages_with_an_exact_total_has_more_and_next_offset(user):
    sessions = list(reversed(make_sessions(user, 7)))
    first = session_list_for_user(user=user, limit=3)
    assert [s["id"] for s in first.sessions] == [s.id for s in sessions[:3]]
    assert (first.total, first.has_more, first.next_offset) == (7, True, 3)
    middle = session_list_for_user(user=user, limit=3, offset=3)
    assert [s["id"] for s in middle.sessions] == [s.id for s in sessions[3:6]]
    assert (middle.has_more, middle.next_offset) == (True, 6)
    last = session_list_for_user(user=user, limit=3, offset=6)
    assert [s["id"] for s in last.sessions] == [sessions[6].id]
    assert (last.total, last.has_more, last.next_offset) == (7, False, None)
    beyond = session_list_for_user(user=user, limit=3, offset=50)
    assert (beyond.sessions, beyond.total, beyond.has_more) == ([], 7, False)


def test_an_empty_list_has_total_zero(user):
    page = session_list_for_user(user=user)
    assert (page.sessions, page.total, page.has_more, page.next_offset) == ([], 0, False, None)


@pytest.mark.parametrize("limit", [5, 50])
def test_list_costs_one_page_query_one_count_and_one_redis_round_trip(
    user, limit, django_assert_num_queries, redis_commands
):
    make_sessions(user, 60)
    with django_assert_num_queries(2):
        page = session_list_for_user(user=user, limit=limit)
    assert len(page.sessions) == limit
    assert redis_commands == ["MGET"]


def test_list_logs_the_seeds_line(user, caplog):
    caplog.set_level(logging.INFO, logger="sessions_app")
    make_sessions(user, 3)
    session_list_for_user(user=user)
    assert f"Loaded 3 sessions from PostgreSQL for user {user.pk}" in caplog.messages


def test_a_newer_hot_entry_wins_even_when_its_timestamp_sorts_lower_as_text(user):
    session = SessionFactory(user=user, status=Status.RUNNING, round_number=1, updated_at=NOON_UTC)
    hot = session_snapshot(session)
    # 08:30 at UTC-4 is 12:30 UTC: later than the row, though "08:30" < "12:00" as text.
    newer = "2026-01-01T08:30:00-04:00"
    assert newer < NOON_UTC.isoformat()
    hot.update(round_number=3, contributions=5, phase="discussion", updated_at=newer)
    SessionCache.set(session.id, hot)
    [listed] = session_list_for_user(user=user).sessions
    assert (listed["round_number"], listed["contributions"], listed["phase"]) == (
        3,
        5,
        "discussion",
    )


def test_an_older_hot_entry_loses_even_when_its_timestamp_sorts_higher_as_text(user):
    session = SessionFactory(
        user=user, status=Status.COMPLETED, round_number=4, updated_at=NOON_UTC
    )
    hot = session_snapshot(session)
    # 13:00 at UTC+2 is 11:00 UTC: earlier than the row, though "13:00" > "12:00" as text.
    older = "2026-01-01T13:00:00+02:00"
    assert older > NOON_UTC.isoformat()
    hot.update(status=Status.RUNNING, round_number=2, updated_at=older)
    SessionCache.set(session.id, hot)
    [listed] = session_list_for_user(user=user).sessions
    assert (listed["status"], listed["round_number"]) == (Status.COMPLETED, 4)


def test_a_hot_entry_never_changes_the_problem_or_the_id(user):
    session = SessionFactory(user=user, updated_at=NOON_UTC)
    hot = session_snapshot(session)
    hot.update(problem_statement="tampered", updated_at="2026-01-02T00:00:00+00:00")
    SessionCache.set(session.id, hot)
    [listed] = session_list_for_user(user=user).sessions
    assert listed["problem_statement"] == session.problem_statement


def test_list_is_right_after_redis_is_flushed(user, clean_redis):
    sessions = make_sessions(user, 3, status=Status.COMPLETED)
    for session in sessions:
        SessionCache.set(session.id, session_snapshot(session))
    clean_redis.flushdb()
    page = session_list_for_user(user=user)
    assert [s["id"] for s in page.sessions] == [s.id for s in reversed(sessions)]
    assert {s["status"] for s in page.sessions} == {Status.COMPLETED}


# --- detail -------------------------------------------------------------------------------------


def test_detail_comes_from_redis_without_touching_postgresql(user, django_assert_num_queries):
    session = SessionFactory(user=user, synthesis_text="Do it.")
    SessionCache.set(session.id, session_snapshot(session))
    with django_assert_num_queries(0):
        detail = session_detail_for_user(user=user, session_id=session.id)
    assert detail["id"] == session.id and detail["synthesis"] == "Do it."


def test_detail_after_a_flush_comes_from_postgresql_and_refills_redis(
    user, clean_redis, django_assert_num_queries
):
    session = SessionFactory(user=user, status=Status.COMPLETED, synthesis_text="Do it.")
    clean_redis.flushdb()
    with django_assert_num_queries(1):
        detail = session_detail_for_user(user=user, session_id=session.id)
    assert detail["synthesis"] == "Do it."
    assert SessionCache.get(session.id) == detail
    assert SessionCache.ttl(session.id) is not None
    with django_assert_num_queries(0):
        assert session_detail_for_user(user=user, session_id=session.id) == detail


def test_a_refill_does_not_overwrite_an_entry_written_meanwhile(user, monkeypatch):
    session = SessionFactory(user=user, status=Status.RUNNING)
    fresher = {**session_snapshot(session), "status": Status.COMPLETED}

    def snapshot_then_a_commit_elsewhere(row):
        stale = session_snapshot(row)
        SessionCache.set(session.id, fresher)  # a status change committed after our read
        return stale

    monkeypatch.setattr(selectors, "session_snapshot", snapshot_then_a_commit_elsewhere)
    session_detail_for_user(user=user, session_id=session.id)
    assert SessionCache.get(session.id)["status"] == Status.COMPLETED


def test_detail_of_another_users_session_is_none_from_either_store(user, other_user):
    session = SessionFactory(user=other_user)
    assert session_detail_for_user(user=user, session_id=session.id) is None  # PostgreSQL
    SessionCache.set(session.id, session_snapshot(session))
    assert session_detail_for_user(user=user, session_id=session.id) is None  # Redis


def test_detail_of_a_deleted_session_is_none_from_either_store(user):
    session = SessionFactory(user=user, status=Status.DELETED)
    assert session_detail_for_user(user=user, session_id=session.id) is None
    SessionCache.set(session.id, session_snapshot(session))
    assert session_detail_for_user(user=user, session_id=session.id) is None


def test_detail_of_an_unknown_id_is_none(user):
    assert session_detail_for_user(user=user, session_id="bo1_nothing-here") is None


# --- events -------------------------------------------------------------------------------------


def test_events_after_a_sequence_come_in_order(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    session_record_progress(
        session_id=session.id,
        events=[NewEvent("round_started"), NewEvent("contribution"), NewEvent("convergence")],
    )
    events = session_events_after(session_id=session.id, after=1)
    assert [(e["sequence"], e["event_type"]) for e in events] == [
        (2, "contribution"),
        (3, "convergence"),
    ]
    assert session_events_after(session_id=session.id, after=0, limit=1)[0]["sequence"] == 1
