"""The per-user, per-status counters behind the list's exact total, kept by a database trigger."""

import pytest
from django.db import connection
from django.db.models import Count

from sessions_app.models import DeliberationSession, SessionCount, Status
from sessions_app.selectors import session_list_for_user
from sessions_app.services import session_create, session_soft_delete, session_transition
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def counters(user):
    return {c.status: c.count for c in SessionCount.objects.filter(user=user) if c.count}


def actual(user):
    rows = DeliberationSession.objects.filter(user=user).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def test_creating_sessions_counts_them(user):
    for n in range(3):
        session_create(user=user, problem_statement=f"Should we hire person number {n}?")
    assert counters(user) == {Status.CREATED: 3} == actual(user)


def test_a_status_change_moves_one_from_the_old_count_to_the_new(user):
    session = SessionFactory(user=user)
    SessionFactory(user=user)
    session_transition(session_id=session.id, to=Status.QUEUED)
    session_transition(session_id=session.id, to=Status.RUNNING)
    assert counters(user) == {Status.CREATED: 1, Status.RUNNING: 1} == actual(user)


def test_soft_delete_of_a_running_session_counts_it_deleted(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    session_soft_delete(session_id=session.id)
    assert counters(user) == {Status.DELETED: 1} == actual(user)


def test_queryset_update_and_delete_are_counted_too(user):
    sessions = [SessionFactory(user=user) for _ in range(4)]
    DeliberationSession.objects.filter(pk__in=[s.pk for s in sessions[:2]]).update(
        status=Status.COMPLETED
    )
    DeliberationSession.objects.filter(pk=sessions[3].pk).delete()
    assert counters(user) == {Status.CREATED: 1, Status.COMPLETED: 2} == actual(user)


def test_moving_a_session_to_another_user_moves_its_count(user, other_user):
    session = SessionFactory(user=user)
    DeliberationSession.objects.filter(pk=session.pk).update(user=other_user)
    assert counters(user) == {}
    assert counters(other_user) == {Status.CREATED: 1}


def test_truncating_sessions_empties_the_counters(user):
    SessionFactory(user=user)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred checks would block TRUNCATE
        cursor.execute("TRUNCATE sessions, session_events CASCADE")
    assert not SessionCount.objects.exists()


def test_list_total_comes_from_the_counters_and_hides_deleted(user):
    sessions = [SessionFactory(user=user) for _ in range(5)]
    session_soft_delete(session_id=sessions[0].id)
    session_transition(session_id=sessions[1].id, to=Status.QUEUED)
    page = session_list_for_user(user=user, limit=2)
    assert (page.total, len(page.sessions), page.has_more) == (4, 2, True)
    assert session_list_for_user(user=user, status=Status.QUEUED).total == 1
    assert session_list_for_user(user=user, status=Status.DELETED).total == 0
