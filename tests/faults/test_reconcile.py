"""`manage.py reconcile_sessions`: applies kept writes, repairs hot entries, requeues orphans."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from deliberation.lease import Lease
from deliberation.outbox import OutboxOp, outbox_key
from deliberation.reconcile import ReconcileThread
from sessions_app.cache import SessionCache, entry_key
from sessions_app.models import DeliberationSession, SessionCountChange, SessionEvent, Status
from sessions_app.selectors import session_counts_for_user
from sessions_app.services import NewEvent, session_cache_refresh, session_transition
from sessions_app.snapshots import session_snapshot
from tests.deliberation.test_worker import wait_until
from tests.factories import SessionFactory
from tests.faults.wiring import database_in_process_via

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timedelta(minutes=10)


def running_session(user, *, idle_for: timedelta = LONG_AGO) -> DeliberationSession:
    """A running session whose last sign of life is `idle_for` ago."""
    session = SessionFactory(user=user)
    session_transition(session_id=session.id, to=Status.QUEUED)
    session_transition(session_id=session.id, to=Status.RUNNING)
    DeliberationSession.objects.filter(pk=session.id).update(
        status_changed_at=timezone.now() - idle_for
    )
    return DeliberationSession.objects.get(pk=session.id)


def keep_writes(direct_redis, session_id: str, count: int = 3) -> list[OutboxOp]:
    """What a worker leaves in Redis when PostgreSQL refused its last `count` steps."""
    ops = [
        OutboxOp.progress(
            [NewEvent("contribution", {"round": 1, "n": n}, idempotency_key=f"engine:{n}")],
            {"contribution_count": n, "checkpoint": {"emitted": n}},
        )
        for n in range(1, count + 1)
    ]
    direct_redis.rpush(outbox_key(session_id), *(op.to_json() for op in ops))
    return ops


def corrupt_hot_entry(direct_redis, session: DeliberationSession, **wrong) -> None:
    snapshot = {**session_snapshot(session), **wrong}
    direct_redis.set(cache.make_key(entry_key(session.id)), json.dumps(snapshot), ex=3600)


def hot_status(session_id: str) -> str | None:
    entry = SessionCache.get(session_id)
    return entry["status"] if entry else None


def queued_runs(broker_client) -> list[str]:
    """The argument lists (as Celery writes them) of the run tasks waiting in the broker."""
    return [json.loads(raw)["headers"]["argsrepr"] for raw in broker_client.lrange("celery", 0, -1)]


@pytest.fixture
def scene(user, direct_redis):
    """One session of each kind reconcile has to fix."""
    with_kept = running_session(user, idle_for=timedelta(seconds=0))
    kept = keep_writes(direct_redis, with_kept.id)
    finished = SessionFactory(user=user)
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED):
        session_transition(session_id=finished.id, to=status)
    finished.refresh_from_db()
    corrupt_hot_entry(direct_redis, finished, status=Status.RUNNING, phase="discussion")
    orphan = running_session(user)
    return {"with_kept": with_kept, "kept": kept, "finished": finished, "orphan": orphan}


def test_reconcile_applies_kept_writes_repairs_hot_entries_and_requeues_orphans(
    scene, direct_redis, broker_client
):
    out = StringIO()
    call_command("reconcile_sessions", stdout=out)
    output = out.getvalue()

    with_kept = scene["with_kept"]
    events = list(SessionEvent.objects.filter(session_id=with_kept.id).order_by("sequence"))
    assert [(e.sequence, e.idempotency_key) for e in events] == [
        (1, "engine:1"),
        (2, "engine:2"),
        (3, "engine:3"),
    ]
    assert DeliberationSession.objects.get(pk=with_kept.id).contribution_count == 3
    assert not direct_redis.exists(outbox_key(with_kept.id))
    assert f"did apply kept writes of {with_kept.id}" in output

    assert hot_status(scene["finished"].id) == Status.COMPLETED
    assert SessionCache.get(scene["finished"].id)["phase"] == scene["finished"].phase
    assert f"did repair the hot entry of {scene['finished'].id}" in output

    assert f"did requeue {scene['orphan'].id}" in output
    assert repr([scene["orphan"].id]) in queued_runs(broker_client)

    # A second pass finds nothing left to repair but the orphan, still waiting for a worker.
    again = StringIO()
    call_command("reconcile_sessions", stdout=again)
    assert "0 kept-write sessions, 0 hot entries repaired" in again.getvalue()
    assert SessionEvent.objects.filter(session_id=with_kept.id).count() == 3


def test_reconcile_dry_run_shows_what_it_would_do_and_changes_nothing(
    scene, direct_redis, broker_client
):
    before = direct_redis.lrange(outbox_key(scene["with_kept"].id), 0, -1)
    out = StringIO()
    call_command("reconcile_sessions", "--dry-run", stdout=out)
    output = out.getvalue()

    assert f"would apply kept writes of {scene['with_kept'].id}" in output
    assert f"would repair the hot entry of {scene['finished'].id}" in output
    assert f"would requeue {scene['orphan'].id}" in output
    assert output.strip().endswith("1 kept-write sessions, 1 hot entries repaired, 1 requeued")
    assert direct_redis.lrange(outbox_key(scene["with_kept"].id), 0, -1) == before
    assert not SessionEvent.objects.filter(session_id=scene["with_kept"].id).exists()
    assert hot_status(scene["finished"].id) == Status.RUNNING
    assert broker_client.llen("celery") == 0


def test_reconcile_leaves_a_session_with_a_live_worker_alone(user, direct_redis, broker_client):
    session = running_session(user)
    keep_writes(direct_redis, session.id)
    corrupt_hot_entry(direct_redis, session, phase="voting")
    lease = Lease(session.id, ttl=30)
    assert lease.acquire()
    try:
        out = StringIO()
        call_command("reconcile_sessions", stdout=out)
    finally:
        lease.release()
    assert "0 kept-write sessions, 0 hot entries repaired, 0 requeued" in out.getvalue()
    assert direct_redis.llen(outbox_key(session.id)) == 3  # its worker applies them itself
    assert SessionCache.get(session.id)["phase"] == "voting"  # a live entry may lead PostgreSQL
    assert broker_client.llen("celery") == 0


def test_reconcile_drops_kept_writes_of_a_session_killed_meanwhile(user, direct_redis):
    session = running_session(user)
    keep_writes(direct_redis, session.id)
    session_transition(session_id=session.id, to=Status.KILLED, events=[NewEvent("killed")])
    call_command("reconcile_sessions", stdout=StringIO())
    assert not direct_redis.exists(outbox_key(session.id))
    types = list(SessionEvent.objects.filter(session=session).values_list("event_type", flat=True))
    assert types == ["killed"]  # nothing was appended after the kill


def test_reconcile_removes_the_hot_entry_of_a_session_postgres_no_longer_has(
    api, user, direct_redis
):
    session = SessionFactory(user=user)
    session_cache_refresh(session_id=session.id)
    DeliberationSession.objects.filter(pk=session.id).delete()  # e.g. purged while Redis was down
    out = StringIO()
    call_command("reconcile_sessions", stdout=out)
    assert SessionCache.get(session.id) is None
    assert f"did repair the hot entry of {session.id}" in out.getvalue()
    assert api.get(f"/api/v1/sessions/{session.id}").status_code == 404


def test_reconcile_with_postgres_down_fails_clearly_and_keeps_the_writes(
    user, direct_redis, pg_proxy
):
    session = running_session(user)
    keep_writes(direct_redis, session.id)
    with database_in_process_via(pg_proxy):
        pg_proxy.cut()
        with pytest.raises(CommandError, match="PostgreSQL unavailable"):
            call_command("reconcile_sessions", stdout=StringIO())
    assert direct_redis.llen(outbox_key(session.id)) == 3
    call_command("reconcile_sessions", stdout=StringIO())
    assert SessionEvent.objects.filter(session=session).count() == 3


def test_the_same_repair_runs_periodically_in_every_worker(user, direct_redis, settings):
    settings.BO1_REAPER_INTERVAL = 1
    session = running_session(user, idle_for=timedelta(seconds=0))
    keep_writes(direct_redis, session.id, count=2)
    repair = ReconcileThread()
    repair.start()
    try:
        wait_until(
            lambda: SessionEvent.objects.filter(session=session).count() == 2,
            timeout=10,
            what="kept writes applied by the periodic pass",
        )
    finally:
        repair.stopping.set()
        repair.join(timeout=5)
    assert not direct_redis.exists(outbox_key(session.id))
    assert not repair.is_alive()


def test_reconcile_folds_the_count_changes_into_the_counters_and_a_dry_run_does_not(user):
    sessions = [SessionFactory(user=user) for _ in range(3)]
    session_transition(session_id=sessions[0].id, to=Status.QUEUED)
    before = session_counts_for_user(user=user)
    call_command("reconcile_sessions", "--dry-run", stdout=StringIO())
    assert SessionCountChange.objects.count() == 2  # created and queued, on this connection
    call_command("reconcile_sessions", stdout=StringIO())
    assert not SessionCountChange.objects.exists()
    assert session_counts_for_user(user=user) == before == {"created": 2, "queued": 1}
