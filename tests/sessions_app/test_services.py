"""Writes: create, the one status-changing function, progress, soft delete, cache on commit."""

import itertools
import logging
import threading
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction

from sessions_app import services
from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, PauseReason, Phase, SessionEvent, Status
from sessions_app.services import (
    TRANSITIONS,
    IllegalTransition,
    NewEvent,
    SessionConflict,
    SessionNotFound,
    session_create,
    session_record_progress,
    session_soft_delete,
    session_transition,
)
from sessions_app.signals import session_status_changed
from sessions_app.snapshots import session_snapshot
from tests.factories import SessionFactory, UserFactory

STATEMENT = "Should we open a second office in Porto next year?"
ALL_PAIRS = list(itertools.product(Status.values, Status.values))


@pytest.fixture
def status_changes():
    """Every session_status_changed signal sent during the test."""
    sent = []

    def record(sender, **kwargs):
        sent.append(kwargs)

    session_status_changed.connect(record, dispatch_uid="test-recorder")
    yield sent
    session_status_changed.disconnect(dispatch_uid="test-recorder")


def walk(session_id, *path, **kwargs):
    for status in path:
        session_transition(session_id=session_id, to=status, **kwargs)


# --- create -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_writes_the_row_then_the_hot_entry_after_commit(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        session, created = session_create(
            user=user, problem_statement=STATEMENT, problem_context={"team": 4}, max_rounds=3
        )
        assert SessionCache.get(session.id) is None  # not before the commit
    assert created is True
    row = DeliberationSession.objects.get(pk=session.id)
    assert (row.user_id, row.status, row.phase) == (user.pk, Status.CREATED, Phase.INTAKE)
    assert row.problem_context == {"team": 4} and row.max_rounds == 3
    hot = SessionCache.get(session.id)
    assert hot["id"] == session.id and hot["status"] == Status.CREATED
    assert hot["user_id"] == user.pk
    assert 0 < SessionCache.ttl(session.id) <= settings.SESSION_CACHE_TTL


@pytest.mark.django_db
def test_create_with_a_used_idempotency_key_returns_the_first_session(user):
    first, created = session_create(user=user, problem_statement=STATEMENT, idempotency_key="k1")
    again, created_again = session_create(
        user=user, problem_statement="A different text entirely", idempotency_key="k1"
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert DeliberationSession.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_idempotency_keys_belong_to_one_user(user, other_user):
    mine, _ = session_create(user=user, problem_statement=STATEMENT, idempotency_key="same")
    theirs, created = session_create(
        user=other_user, problem_statement=STATEMENT, idempotency_key="same"
    )
    assert created is True and theirs.pk != mine.pk


@pytest.mark.django_db
def test_create_logs_the_seeds_line_once_both_stores_have_it(
    user, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="sessions_app")
    with django_capture_on_commit_callbacks(execute=True):
        session, _ = session_create(user=user, problem_statement=STATEMENT)
    assert (
        f"Created session: {session.id} for user: {user.pk} (saved to both Redis and PostgreSQL)"
        in caplog.messages
    )


# --- the transition table -----------------------------------------------------------------------


def test_the_transition_table_is_the_one_in_the_design():
    assert {k: set(v) for k, v in TRANSITIONS.items()} == {
        "created": {"queued", "killed", "deleted"},
        "queued": {"running", "failed", "killed", "deleted"},
        "running": {"completed", "failed", "killed", "paused", "deleted"},
        "paused": {"queued", "killed", "deleted"},
        "completed": {"deleted"},
        "failed": {"deleted"},
        "killed": {"deleted"},
        "deleted": set(),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "requested"), ALL_PAIRS)
def test_every_status_pair_is_allowed_exactly_when_the_table_says(user, current, requested):
    session = SessionFactory(user=user, status=current)
    reason = PauseReason.USER if requested == Status.PAUSED else ""
    if requested in TRANSITIONS[current]:
        changed = session_transition(session_id=session.id, to=requested, pause_reason=reason)
        assert changed.status == requested
        assert DeliberationSession.objects.get(pk=session.id).status == requested
    else:
        with pytest.raises(IllegalTransition) as info:
            session_transition(session_id=session.id, to=requested, pause_reason=reason)
        assert (info.value.current, info.value.requested) == (current, requested)
        assert DeliberationSession.objects.get(pk=session.id).status == current


@pytest.mark.django_db
def test_running_sets_started_at_once_and_finishing_sets_completed_at(user):
    session = SessionFactory(user=user)
    walk(session.id, Status.QUEUED)
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.started_at is None and row.completed_at is None
    walk(session.id, Status.RUNNING)
    started = DeliberationSession.objects.get(pk=session.id).started_at
    assert started is not None
    session_transition(session_id=session.id, to=Status.PAUSED, pause_reason=PauseReason.USER)
    walk(session.id, Status.QUEUED, Status.RUNNING)
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.started_at == started  # a resume is not a new start
    assert row.completed_at is None
    walk(session.id, Status.COMPLETED)
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.completed_at is not None and row.completed_at >= started


@pytest.mark.django_db
@pytest.mark.parametrize("final", [Status.FAILED, Status.KILLED])
def test_failing_or_killing_also_sets_completed_at(user, final):
    session = SessionFactory(user=user)
    walk(session.id, Status.QUEUED, Status.RUNNING, final)
    assert DeliberationSession.objects.get(pk=session.id).completed_at is not None


@pytest.mark.django_db
def test_every_transition_moves_status_changed_at_and_updated_at(user):
    session = SessionFactory(user=user)
    before = DeliberationSession.objects.get(pk=session.id)
    walk(session.id, Status.QUEUED)
    after = DeliberationSession.objects.get(pk=session.id)
    assert after.status_changed_at > before.status_changed_at
    assert after.updated_at == after.status_changed_at


@pytest.mark.django_db
def test_pausing_records_the_reason_and_resuming_clears_it(user):
    session = SessionFactory(user=user)
    walk(session.id, Status.QUEUED, Status.RUNNING)
    session_transition(
        session_id=session.id,
        to=Status.PAUSED,
        pause_reason=PauseReason.CLARIFICATION,
        fields={"clarification_question": "What is the budget?"},
    )
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.pause_reason == PauseReason.CLARIFICATION
    assert row.clarification_question == "What is the budget?"
    walk(session.id, Status.QUEUED)
    row = DeliberationSession.objects.get(pk=session.id)
    assert (row.pause_reason, row.clarification_question) == ("", "")


@pytest.mark.django_db
def test_pausing_without_a_known_reason_is_refused(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    with pytest.raises(ValueError, match="pause_reason"):
        session_transition(session_id=session.id, to=Status.PAUSED, pause_reason="lunch")
    assert DeliberationSession.objects.get(pk=session.id).status == Status.RUNNING


@pytest.mark.django_db
def test_expected_narrows_the_statuses_a_caller_accepts(user):
    session = SessionFactory(user=user, status=Status.PAUSED)
    with pytest.raises(IllegalTransition):
        session_transition(session_id=session.id, to=Status.KILLED, expected=[Status.RUNNING])
    session_transition(session_id=session.id, to=Status.KILLED, expected=[Status.PAUSED])
    assert DeliberationSession.objects.get(pk=session.id).status == Status.KILLED


@pytest.mark.django_db
def test_a_transition_refuses_fields_outside_the_progress_list(user):
    session = SessionFactory(user=user)
    with pytest.raises(ValueError, match="user"):
        session_transition(session_id=session.id, to=Status.QUEUED, fields={"user": None})


@pytest.mark.django_db
def test_a_transition_writes_progress_fields_and_events_with_the_status(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    session_transition(
        session_id=session.id,
        to=Status.COMPLETED,
        fields={"synthesis_text": "Go.", "total_cost": Decimal("0.5"), "phase": Phase.COMPLETE},
        events=[NewEvent("synthesis_complete"), NewEvent("complete", {"synthesis": "Go."})],
    )
    row = DeliberationSession.objects.get(pk=session.id)
    assert (row.synthesis_text, row.total_cost, row.phase) == ("Go.", Decimal("0.5"), "complete")
    assert list(row.events.values_list("sequence", "event_type")) == [
        (1, "synthesis_complete"),
        (2, "complete"),
    ]


@pytest.mark.django_db
def test_transition_of_an_unknown_session_raises_not_found():
    with pytest.raises(SessionNotFound):
        session_transition(session_id="bo1_missing", to=Status.QUEUED)


@pytest.mark.django_db
def test_a_transition_logs_the_seeds_update_line(user, caplog):
    caplog.set_level(logging.INFO, logger="sessions_app")
    session = SessionFactory(user=user, status=Status.RUNNING)
    session_transition(session_id=session.id, to=Status.COMPLETED)
    assert f"Updated session {session.id} status to 'completed' in PostgreSQL" in caplog.messages


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_changes_let_exactly_one_win():
    session = SessionFactory(user=UserFactory(), status=Status.QUEUED)
    first_holds_lock = threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                session_transition(session_id=session.id, to=Status.RUNNING)
                first_holds_lock.set()
                time.sleep(0.3)  # the second writer is now waiting on the row lock
            outcomes["first"] = "ok"
        finally:
            connection.close()

    def second() -> None:
        first_holds_lock.wait(5)
        try:
            session_transition(session_id=session.id, to=Status.RUNNING)
            outcomes["second"] = "ok"
        except IllegalTransition as exc:  # SessionConflict is one too
            outcomes["second"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert outcomes["first"] == "ok"
    assert isinstance(outcomes["second"], IllegalTransition)
    assert outcomes["second"].current == Status.RUNNING
    assert DeliberationSession.objects.get(pk=session.id).status == Status.RUNNING


def test_a_conflict_is_reported_as_an_illegal_transition():
    assert issubclass(SessionConflict, IllegalTransition)


# --- the signal and the cache after commit ------------------------------------------------------


@pytest.mark.django_db
def test_a_status_change_sends_session_status_changed(user, status_changes):
    session = SessionFactory(user=user)
    walk(session.id, Status.QUEUED)
    assert status_changes == [
        {"signal": session_status_changed, "session_id": session.id,
         "old_status": "created", "new_status": "queued"}
    ]  # fmt: skip


@pytest.mark.django_db
def test_an_illegal_change_sends_no_signal(user, status_changes):
    session = SessionFactory(user=user)
    with pytest.raises(IllegalTransition):
        walk(session.id, Status.COMPLETED)
    assert status_changes == []


@pytest.mark.django_db
def test_the_hot_entry_is_refreshed_only_once_the_change_commits(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        session, _ = session_create(user=user, problem_statement=STATEMENT)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        session_transition(session_id=session.id, to=Status.QUEUED)
        assert SessionCache.get(session.id)["status"] == Status.CREATED
    assert len(callbacks) >= 1
    assert SessionCache.get(session.id)["status"] == Status.QUEUED


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_the_hot_entry_alone(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        session, _ = session_create(user=user, problem_statement=STATEMENT)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        session_transition(session_id=session.id, to=Status.QUEUED)
        raise RuntimeError("the caller fails after the transition")
    assert callbacks == []
    assert SessionCache.get(session.id)["status"] == Status.CREATED
    assert DeliberationSession.objects.get(pk=session.id).status == Status.CREATED


@pytest.mark.django_db
def test_cache_refresh_rewrites_the_entry_from_postgresql(user):
    session = SessionFactory(user=user, status=Status.RUNNING, round_number=2)
    SessionCache.set(session.id, {"id": session.id, "status": "stale"})
    snapshot = services.session_cache_refresh(session_id=session.id)
    assert snapshot["status"] == Status.RUNNING
    assert SessionCache.get(session.id)["round_number"] == 2


# --- soft delete --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_soft_delete_kills_an_unfinished_session_first_then_hides_it(user, status_changes):
    session = SessionFactory(user=user)
    walk(session.id, Status.QUEUED, Status.RUNNING)
    status_changes.clear()
    deleted = session_soft_delete(session_id=session.id)
    assert deleted.status == Status.DELETED
    assert [(c["old_status"], c["new_status"]) for c in status_changes] == [
        ("running", "killed"),
        ("killed", "deleted"),
    ]
    row = DeliberationSession.objects.get(pk=session.id)  # still in PostgreSQL
    assert row.status == Status.DELETED and row.completed_at is not None
    killed = row.events.get(event_type="killed")
    assert killed.data == {"reason": "deleted"}


@pytest.mark.django_db
def test_soft_delete_of_a_finished_session_adds_no_kill(user, status_changes):
    session = SessionFactory(user=user, status=Status.COMPLETED)
    session_soft_delete(session_id=session.id)
    assert [c["new_status"] for c in status_changes] == ["deleted"]
    assert not SessionEvent.objects.filter(session_id=session.id).exists()


@pytest.mark.django_db
def test_soft_delete_twice_is_illegal(user):
    session = SessionFactory(user=user, status=Status.COMPLETED)
    session_soft_delete(session_id=session.id)
    with pytest.raises(IllegalTransition):
        session_soft_delete(session_id=session.id)


# --- progress -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_progress_assigns_contiguous_sequences_across_calls(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    session_record_progress(
        session_id=session.id, events=[NewEvent("round_started"), NewEvent("contribution")]
    )
    session_record_progress(
        session_id=session.id, events=[NewEvent("contribution"), NewEvent("convergence")]
    )
    sequences = list(
        SessionEvent.objects.filter(session=session).values_list("sequence", flat=True)
    )
    assert sequences == [1, 2, 3, 4]
    assert DeliberationSession.objects.get(pk=session.id).last_sequence == 4


@pytest.mark.django_db
def test_progress_skips_an_idempotency_key_it_has_already_written(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    first = session_record_progress(
        session_id=session.id, events=[NewEvent("contribution", {"n": 1}, idempotency_key="c1")]
    )
    retried = session_record_progress(
        session_id=session.id,
        events=[
            NewEvent("contribution", {"n": 1}, idempotency_key="c1"),
            NewEvent("contribution", {"n": 2}, idempotency_key="c2"),
            NewEvent("contribution", {"n": 2}, idempotency_key="c2"),
        ],
    )
    assert [e.sequence for e in first] == [1]
    assert [e.sequence for e in retried] == [2]
    assert list(session.events.values_list("idempotency_key", "sequence")) == [
        ("c1", 1),
        ("c2", 2),
    ]


@pytest.mark.django_db
def test_progress_writes_fields_and_last_activity(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    session_record_progress(
        session_id=session.id,
        events=[NewEvent("round_started", {"round": 2})],
        fields={"round_number": 2, "phase": Phase.DISCUSSION, "total_tokens": 900},
    )
    row = DeliberationSession.objects.get(pk=session.id)
    assert (row.round_number, row.phase, row.total_tokens) == (2, "discussion", 900)
    assert row.last_activity_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.CREATED, Status.PAUSED, Status.KILLED, Status.DELETED])
def test_progress_is_refused_when_the_status_does_not_allow_it(user, status):
    session = SessionFactory(user=user, status=status)
    result = session_record_progress(
        session_id=session.id, events=[NewEvent("contribution")], fields={"round_number": 3}
    )
    assert result is None
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.round_number == 0 and row.last_sequence == 0
    assert not SessionEvent.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_progress_publishes_the_events_and_the_entry_after_commit(
    user, django_capture_on_commit_callbacks
):
    session = SessionFactory(user=user, status=Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        session_record_progress(
            session_id=session.id,
            events=[NewEvent("contribution", {"persona_code": "cfo"})],
            fields={"contribution_count": 1},
        )
    assert SessionCache.get(session.id)["contributions"] == 1
    stream = SessionCache.keys_for(session.id)
    assert any(key.endswith(":stream") for key in stream)


@pytest.mark.django_db
@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "plain"])
def test_the_entry_a_progress_step_writes_is_the_row_as_the_orm_reads_it(
    user, django_capture_on_commit_callbacks, settings, prepared
):
    """The locked read builds the row from raw columns: every kind of field must come back as the
    ORM's own read gives it (JSON decoded, Decimal, aware datetimes, nulls)."""
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    session = SessionFactory(
        user=user,
        status=Status.RUNNING,
        problem_context={"budget": 12.5, "regions": ["EU", "US"]},
        personas=[{"code": "cfo", "name": "Maria Santos"}],
        costs_by_phase={"discussion": "0.120000"},
        error={"kind": "none", "detail": None},
        cost_limit=Decimal("2.500000"),
        total_cost=Decimal("0.125000"),
        clarification_question="Which market first?",
        checkpoint={"steps": ["x" * 100]},
    )
    with django_capture_on_commit_callbacks(execute=True):
        session_record_progress(session_id=session.id, events=[NewEvent("contribution")])
    read_back = DeliberationSession.objects.get(pk=session.id)
    assert SessionCache.get(session.id) == session_snapshot(read_back)
    assert read_back.checkpoint == {"steps": ["x" * 100]}


@pytest.mark.django_db
def test_progress_of_an_unknown_session_raises_not_found():
    with pytest.raises(SessionNotFound):
        session_record_progress(session_id="bo1_missing", events=[NewEvent("contribution")])


@pytest.mark.django_db
def test_purge_removes_the_session_from_both_stores(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        session, _ = session_create(user=user, problem_statement=STATEMENT)
    services.session_purge(session_id=session.id)
    assert not DeliberationSession.objects.filter(pk=session.id).exists()
    assert SessionCache.keys_for(session.id) == []
