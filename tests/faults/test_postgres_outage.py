"""PostgreSQL down while a deliberation runs: the worker keeps its writes and applies them after."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from deliberation.outbox import OutboxOp, outbox_key
from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.deliberation.test_worker import (
    assert_contiguous_without_duplicate_contributions,
    create_and_start,
    events,
    row,
    wait_until,
)
from tests.faults.proxy import FaultProxy
from tests.faults.wiring import REAL_BROKER_URL, database_env_via
from tests.processes import ManagedProcess, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 8.5
# A COMMIT whose bytes reached PostgreSQL just before the cut still lands a moment later.
SETTLE_SECONDS = 0.5


@pytest.fixture
def worker_behind_pg_proxy(request, pg_proxy: FaultProxy) -> Iterator[ManagedProcess]:
    """A real worker whose every PostgreSQL connection goes through the proxy.

    Parametrized indirectly with the offline model's latency: with slow calls the run goes on
    after PostgreSQL returns (new writes queue behind the kept ones); with fast calls it ends
    during the outage and keeps its final status change too.
    """
    process = start_worker(
        name="pg-outage-worker",
        BO1_OFFLINE_LATENCY_MS=str(request.param),
        BO1_LEASE_TTL="5",
        BO1_REAPER_INTERVAL="1",
        CELERY_BROKER_URL=REAL_BROKER_URL,
        **database_env_via(pg_proxy),
    )
    yield process
    process.stop()


def kept_writes(direct_redis, session_id: str) -> list[OutboxOp]:
    return [OutboxOp.from_json(raw) for raw in direct_redis.lrange(outbox_key(session_id), 0, -1)]


def assert_every_engine_event_once_in_order(session_id: str) -> list[SessionEvent]:
    evs = assert_contiguous_without_duplicate_contributions(session_id)
    engine_keys = [
        e.idempotency_key for e in evs if (e.idempotency_key or "").startswith("engine:")
    ]
    assert engine_keys == [f"engine:{n}" for n in range(1, len(engine_keys) + 1)]
    types = [e.event_type for e in evs]
    assert types[0] == "session_started" and types[-1] == "complete"
    assert types.count("session_started") == 1 and types.count("complete") == 1
    return evs


@pytest.mark.parametrize(
    ("worker_behind_pg_proxy", "ends_during_outage"),
    [
        pytest.param(450, False, id="run-outlasts-outage"),
        pytest.param(100, True, id="run-ends-during-outage"),
    ],
    indirect=["worker_behind_pg_proxy"],
)
def test_worker_keeps_deliberating_through_a_postgres_outage_and_applies_kept_writes_in_order(
    api, pg_proxy, worker_behind_pg_proxy, direct_redis, ends_during_outage
):
    worker = worker_behind_pg_proxy
    session_id = create_and_start(api, max_rounds=3)
    wait_until(lambda: row(session_id).contribution_count >= 1, what="a first contribution")

    pg_proxy.cut()
    cut_at = time.monotonic()
    time.sleep(SETTLE_SECONDS)
    written_before = len(events(session_id))
    # The worker goes on deliberating: its writes pile up in the outbox, mirrored to Redis.
    wait_until(
        lambda: len(kept_writes(direct_redis, session_id)) >= 3, timeout=30, what="kept writes"
    )
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut_at)))
    kept = kept_writes(direct_redis, session_id)
    # When the run ended during the outage, its final status change waits behind the rest.
    assert (kept[-1].kind == "transition") is ends_during_outage
    assert row(session_id).status == Status.RUNNING
    if ends_during_outage:
        assert kept[-1].status == Status.COMPLETED
    kept_events = [e for op in kept for e in op.events]
    assert worker.proc.poll() is None, "the worker died during the outage"
    assert len(events(session_id)) == written_before, "a write got through the cut link"
    assert kept_events, "no event was kept during the outage"
    hot = SessionCache.get(session_id)
    assert hot is not None and hot["contributions"] >= row(session_id).contribution_count
    outage = time.monotonic() - cut_at

    pg_proxy.restore()
    wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed after outage")

    session = DeliberationSession.objects.get(pk=session_id)
    assert session.synthesis_text and session.phase == "complete" and session.completed_at
    evs = assert_every_engine_event_once_in_order(session_id)
    by_key = {e.idempotency_key: e for e in evs}
    for kept_event in kept_events:  # what was kept is what was written, once
        stored = by_key[kept_event.idempotency_key]
        assert (stored.event_type, stored.data) == (kept_event.event_type, kept_event.data)
    assert session.last_sequence == len(evs)
    assert not direct_redis.exists(outbox_key(session_id))
    assert SessionCache.get(session_id)["status"] == Status.COMPLETED
    log = worker.log()
    assert "PostgreSQL refused a write" in log
    assert f"kept writes for session {session_id}" in log
    assert outage >= 8
