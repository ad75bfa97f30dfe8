"""The per-user, per-status counts behind the list's exact total, kept by a database trigger."""

import threading

import pytest
from django.db import connection, transaction
from django.db.models import Count

from sessions_app.models import DeliberationSession, SessionCount, SessionCountChange, Status
from sessions_app.selectors import session_counts_for_user, session_list_for_user
from sessions_app.services import (
    session_counts_fold,
    session_create,
    session_soft_delete,
    session_transition,
)
from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


def counters(user):
    """What the list counts: the folded counters plus the changes appended since."""
    return session_counts_for_user(user=user)


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
    assert not SessionCount.objects.exists() and not SessionCountChange.objects.exists()


def test_list_total_comes_from_the_counters_and_hides_deleted(user):
    sessions = [SessionFactory(user=user) for _ in range(5)]
    session_soft_delete(session_id=sessions[0].id)
    session_transition(session_id=sessions[1].id, to=Status.QUEUED)
    page = session_list_for_user(user=user, limit=2)
    assert (page.total, len(page.sessions), page.has_more) == (4, 2, True)
    assert session_list_for_user(user=user, status=Status.QUEUED).total == 1
    assert session_list_for_user(user=user, status=Status.DELETED).total == 0


def test_folding_moves_the_changes_into_the_counters_and_keeps_every_total(user, other_user):
    sessions = [SessionFactory(user=user) for _ in range(3)]
    SessionFactory(user=other_user)
    session_transition(session_id=sessions[0].id, to=Status.QUEUED)
    before = (counters(user), counters(other_user))
    assert (
        session_counts_fold() == 3
    )  # this connection's rows: alice created and queued, bob created
    assert not SessionCountChange.objects.exists()
    assert (counters(user), counters(other_user)) == before
    assert counters(user) == {Status.CREATED: 2, Status.QUEUED: 1} == actual(user)
    session_soft_delete(session_id=sessions[1].id)  # changes after a fold add up with it
    assert counters(user) == {Status.CREATED: 1, Status.QUEUED: 1, Status.DELETED: 1}
    assert session_list_for_user(user=user).total == 2


def test_folding_drops_the_changes_of_a_user_who_is_gone(user):
    gone = UserFactory(username="gone")
    SessionFactory(user=gone)
    gone.delete()
    SessionFactory(user=user)
    session_counts_fold()
    assert not SessionCountChange.objects.exists()
    assert list(SessionCount.objects.values_list("user_id", "count")) == [(user.pk, 1)]


@pytest.mark.django_db(transaction=True)
def test_two_creates_of_one_user_do_not_wait_for_each_other(user):
    """A create's transaction holds no lock another create of the same user needs."""
    first_inserted, first_may_commit = threading.Event(), threading.Event()

    def first_create():
        with transaction.atomic():
            session_create(user=user, problem_statement="Should we open a second office?")
            first_inserted.set()
            first_may_commit.wait(10)
        connection.close()

    thread = threading.Thread(target=first_create)
    thread.start()
    try:
        assert first_inserted.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:  # waiting for the first would be an error
                cursor.execute("SET LOCAL lock_timeout = '1s'")
            session_create(user=user, problem_statement="Should we hire a second designer?")
    finally:
        first_may_commit.set()
        thread.join(10)
    assert counters(user) == {Status.CREATED: 2} == actual(user)
