"""Property tests: the status transition table, and event sequences under concurrent writers."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_app.models import DeliberationSession, PauseReason, SessionEvent, Status
from sessions_app.services import (
    TRANSITIONS,
    IllegalTransition,
    NewEvent,
    session_record_progress,
    session_transition,
)
from tests.factories import SessionFactory

STATUSES = sorted(Status.values)
FINISHED = {Status.COMPLETED, Status.FAILED, Status.KILLED}
# pytest-django's database fixtures are function-scoped; every example makes its own session.
EXAMPLES = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def move(session_id: str, to: str, **kwargs) -> DeliberationSession:
    reason = PauseReason.USER if to == Status.PAUSED else ""
    return session_transition(session_id=session_id, to=to, pause_reason=reason, **kwargs)


@pytest.mark.django_db
@settings(EXAMPLES, max_examples=150)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(STATUSES), st.none() | st.sets(st.sampled_from(STATUSES))),
        min_size=1,
        max_size=14,
    )
)
def test_every_sequence_of_status_changes_follows_the_transition_table(user, steps):
    session = SessionFactory(user=user)
    model = Status.CREATED
    history = [model]
    for to, expected in steps:
        allowed = to in TRANSITIONS[model] and (expected is None or model in expected)
        try:
            move(session.id, to, expected=expected)
        except IllegalTransition as refused:
            assert not allowed, f"{model} -> {to} (expected={expected}) was refused"
            assert refused.current == model
        else:
            assert allowed, f"{model} -> {to} (expected={expected}) was allowed"
            model = to
            history.append(to)
        row = DeliberationSession.objects.get(pk=session.id)
        assert row.status == model
    assert (row.started_at is not None) == (Status.RUNNING in history)
    assert (row.completed_at is not None) == bool(FINISHED & set(history))
    assert (row.pause_reason == PauseReason.USER) == (model == Status.PAUSED)
    assert row.last_sequence == 0 and not SessionEvent.objects.filter(session=session).exists()


def test_the_table_matches_the_documented_lifecycle():
    # DESIGN.md: created -> queued -> running -> completed | failed | killed; running -> paused
    # -> queued; deleted is a soft delete from anywhere, and final.
    reachable, frontier = {Status.CREATED}, [Status.CREATED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(Status.values)
    assert TRANSITIONS[Status.DELETED] == frozenset()
    assert all(Status.DELETED in TRANSITIONS[s] for s in Status.values if s != Status.DELETED)
    for finished in FINISHED:
        assert TRANSITIONS[finished] == {Status.DELETED}
    assert TRANSITIONS[Status.PAUSED] >= {Status.QUEUED}
    assert Status.RUNNING not in TRANSITIONS[Status.CREATED]


writer_plans = st.lists(
    st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=1, max_size=5),
    min_size=2,
    max_size=4,
)


@pytest.mark.django_db(transaction=True)
@settings(EXAMPLES, max_examples=12)
@given(plans=writer_plans, pauses=st.integers(0, 3))
def test_concurrent_writers_get_contiguous_unique_sequences(user, plans, pauses):
    """Writers append batches (some with keys another writer also uses) while a controller
    pauses and resumes the session: numbers stay 1..N, each key lands once, nothing is lost."""
    session = SessionFactory(user=user)
    move(session.id, Status.QUEUED)
    move(session.id, Status.RUNNING)
    start = threading.Barrier(len(plans) + 1)
    written: list[list[SessionEvent]] = [[] for _ in plans]
    transition_events: list[str] = []
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            start.wait(timeout=10)
            for batch, (size, shared) in enumerate(plans[index]):
                events = [
                    NewEvent(
                        "contribution",
                        {"writer": index, "batch": batch, "n": n},
                        idempotency_key=f"shared:{batch}:{n}"
                        if shared
                        else f"w{index}:{batch}:{n}",
                    )
                    for n in range(size)
                ]
                rows = session_record_progress(session_id=session.id, events=events)
                written[index].extend(rows or [])
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def controller() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(pauses):
                for to, kind in ((Status.PAUSED, "paused"), (Status.QUEUED, "resumed")):
                    move(session.id, to, events=[NewEvent(kind)])
                    transition_events.append(kind)
                move(session.id, Status.RUNNING)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(plans))]
    threads.append(threading.Thread(target=controller))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    stored = list(SessionEvent.objects.filter(session=session).order_by("sequence"))
    assert [e.sequence for e in stored] == list(range(1, len(stored) + 1))
    keys = Counter(e.idempotency_key for e in stored if e.idempotency_key)
    assert all(count == 1 for count in keys.values())
    assert len(stored) == sum(len(rows) for rows in written) + len(transition_events)
    assert DeliberationSession.objects.get(pk=session.id).last_sequence == len(stored)
    for rows in written:  # each writer's events keep the order it wrote them in
        sequences = [row.sequence for row in rows]
        assert sequences == sorted(sequences)
