"""Retention: what purge_sessions deletes, what it keeps, and what it leaves in Redis (nothing)."""

import logging
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from deliberation.outbox import OutboxOp
from deliberation.retention_job import RETENTION_JOB, run_retention_job
from sessions_app.cache import SessionCache, redis_client
from sessions_app.models import DeliberationSession, SessionEvent, Status
from sessions_app.redis_keys import job_claim_key, lease_key, outbox_key
from sessions_app.retention import sessions_purge_expired
from sessions_app.selectors import session_counts_for_user
from sessions_app.services import NewEvent
from tests.factories import SessionFactory

NOW = timezone.now()
OLD = NOW - timedelta(days=400)


def aged(user, *, days: int, status: str = Status.COMPLETED, **fields) -> DeliberationSession:
    """A session whose last write was `days` ago, with two events and its Redis keys."""
    at = NOW - timedelta(days=days)
    session = SessionFactory(user=user, status=status, **fields)
    DeliberationSession.objects.filter(pk=session.pk).update(
        created_at=at, updated_at=at, status_changed_at=at
    )
    events = [
        SessionEvent.objects.create(session=session, sequence=n, event_type="contribution")
        for n in (1, 2)
    ]
    SessionCache.set(session.id, {"id": session.id, "status": status})
    SessionCache.append_events(
        session.id, [{"sequence": e.sequence, "event_type": "x"} for e in events]
    )
    return session


def redis_keys_of(session_id: str) -> list[str]:
    return SessionCache.keys_for(session_id)


@pytest.fixture
def policy(settings):
    settings.BO1_RETENTION_DAYS = 365
    settings.BO1_DELETED_RETENTION_DAYS = 30
    return settings


def test_sessions_past_retention_and_long_deleted_ones_go_the_rest_stay(user, policy):
    old = aged(user, days=400)
    recent = aged(user, days=10)
    deleted_long_ago = aged(user, days=40, status=Status.DELETED)
    deleted_lately = aged(user, days=5, status=Status.DELETED)

    report = sessions_purge_expired(now=NOW)

    assert (report.expired, report.deleted, report.events) == (1, 1, 4)
    remaining = set(DeliberationSession.objects.values_list("id", flat=True))
    assert remaining == {recent.id, deleted_lately.id}
    assert not SessionEvent.objects.filter(session_id__in=[old.id, deleted_long_ago.id]).exists()
    assert SessionEvent.objects.filter(session_id=recent.id).count() == 2


def test_without_retention_days_only_soft_deleted_sessions_are_purged(user, policy):
    policy.BO1_RETENTION_DAYS = None
    ancient = aged(user, days=4000)
    deleted = aged(user, days=31, status=Status.DELETED)
    report = sessions_purge_expired(now=NOW)
    assert (report.expired, report.deleted) == (0, 1)
    assert list(DeliberationSession.objects.values_list("id", flat=True)) == [ancient.id]
    assert not DeliberationSession.objects.filter(pk=deleted.id).exists()


def test_a_session_under_legal_hold_is_never_purged(user, policy):
    held_old = aged(user, days=4000, legal_hold=True)
    held_deleted = aged(user, days=400, status=Status.DELETED, legal_hold=True)
    report = sessions_purge_expired(now=NOW)
    assert report.sessions == 0
    assert report.held == 2
    assert DeliberationSession.objects.filter(pk__in=[held_old.id, held_deleted.id]).count() == 2
    assert SessionEvent.objects.filter(session_id=held_old.id).count() == 2
    assert redis_keys_of(held_old.id)


def test_a_purge_leaves_no_redis_key_of_the_session_behind(user, policy):
    session = aged(user, days=400)
    # The keys a worker leaves when it dies mid-run: its lease and the writes it kept.
    redis_client().set(lease_key(session.id), "worker-1", ex=60)
    op = OutboxOp.progress([NewEvent("contribution", {})], {"round_number": 2})
    redis_client().rpush(outbox_key(session.id), op.to_json())
    survivor = aged(user, days=1)
    before = set(redis_keys_of(session.id))
    assert len(before) == 4  # hot entry, stream, lease, outbox

    report = sessions_purge_expired(now=NOW)

    assert report.redis_keys == 4
    assert redis_keys_of(session.id) == []
    assert len(redis_keys_of(survivor.id)) == 2


def test_the_purge_works_in_small_batches_and_keeps_the_counts_right(user, policy):
    doomed = [aged(user, days=400) for _ in range(7)]
    kept = aged(user, days=1)
    report = sessions_purge_expired(now=NOW, batch_size=3)
    assert report.expired == 7
    assert not DeliberationSession.objects.filter(pk__in=[s.id for s in doomed]).exists()
    assert session_counts_for_user(user=user) == {Status.COMPLETED: 1}
    assert DeliberationSession.objects.get().id == kept.id


def test_a_dry_run_counts_and_deletes_nothing(user, policy):
    session = aged(user, days=400)
    aged(user, days=400, legal_hold=True)
    out = StringIO()
    call_command("purge_sessions", "--dry-run", stdout=out)
    keys = redis_keys_of(session.id)
    assert "Would purge 1 sessions (1 past retention, 0 soft-deleted), 2 events" in out.getvalue()
    assert f"2 events, {len(keys)} Redis keys; kept 1 under legal hold" in out.getvalue()
    assert len(keys) == 2  # the hot entry and the stream: counted, not deleted
    assert DeliberationSession.objects.filter(pk=session.id).exists()


@pytest.mark.parametrize(
    "option", [("--pause", "-1"), ("--pause", "nan"), ("--batch-size", "0"), ("--batch-size", "x")]
)
def test_a_bad_option_is_refused_before_anything_is_deleted(user, policy, option):
    session = aged(user, days=400)
    with pytest.raises(CommandError, match=f"argument {option[0]}"):
        call_command("purge_sessions", *option, stdout=StringIO())
    assert DeliberationSession.objects.filter(pk=session.id).exists()


def test_the_command_purges_and_logs_by_count(user, policy, caplog):
    aged(user, days=400)
    aged(user, days=45, status=Status.DELETED)
    out = StringIO()
    with caplog.at_level(logging.INFO, logger="sessions_app.retention"):
        call_command("purge_sessions", stdout=out)
    assert "Purged 2 sessions (1 past retention, 1 soft-deleted), 4 events" in out.getvalue()
    assert any(
        "2 sessions purged (1 past BO1_RETENTION_DAYS, 1 soft-deleted), 4 events" in r.message
        for r in caplog.records
    )
    assert DeliberationSession.objects.count() == 0


def test_a_retention_of_zero_days_is_refused(user, policy):
    policy.BO1_RETENTION_DAYS = 0
    session = aged(user, days=400)
    with pytest.raises(CommandError, match="at least 1"):
        call_command("purge_sessions", stdout=StringIO())
    assert DeliberationSession.objects.filter(pk=session.id).exists()


def test_the_worker_job_runs_once_per_interval_across_workers(user, policy):
    policy.BO1_PURGE_INTERVAL = 86400
    first = aged(user, days=400)
    assert run_retention_job() is True
    assert not DeliberationSession.objects.filter(pk=first.id).exists()
    second = aged(user, days=400)
    assert run_retention_job() is False  # another worker (or this one) already ran it today
    assert DeliberationSession.objects.filter(pk=second.id).exists()
    assert 0 < redis_client().ttl(job_claim_key(RETENTION_JOB)) <= 86400


CHANGELIST = reverse("admin:sessions_app_deliberationsession_changelist")


def test_the_admin_places_and_releases_a_legal_hold_recording_who_and_when(
    admin_client, admin_user, user, policy
):
    session = aged(user, days=400)
    response = admin_client.post(
        CHANGELIST,
        {"action": "place_legal_hold", "_selected_action": [session.pk]},
        follow=True,
    )
    assert "Placed under legal hold: 1 sessions." in response.content.decode()
    session.refresh_from_db()
    assert session.legal_hold is True
    assert session.legal_hold_by == admin_user
    assert timezone.now() - session.legal_hold_at < timedelta(minutes=1)
    assert LogEntry.objects.filter(object_id=session.pk, user=admin_user).count() == 1
    assert sessions_purge_expired(now=NOW).sessions == 0

    admin_client.post(
        CHANGELIST, {"action": "release_legal_hold", "_selected_action": [session.pk]}
    )
    session.refresh_from_db()
    assert session.legal_hold is False
    assert session.legal_hold_by == admin_user
    assert sessions_purge_expired(now=NOW).expired == 1
    assert not DeliberationSession.objects.filter(pk=session.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_workers_retention_thread_runs_the_job(user, policy):
    from deliberation.retention_job import RetentionThread

    policy.BO1_PURGE_INTERVAL = 1
    session = aged(user, days=400)
    thread = RetentionThread()
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while DeliberationSession.objects.filter(pk=session.id).exists():
            assert time.monotonic() < deadline, "the retention thread did not purge"
            time.sleep(0.1)
    finally:
        thread.stopping.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
