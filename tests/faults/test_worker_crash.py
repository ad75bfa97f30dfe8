"""A worker killed with SIGKILL while PostgreSQL is down: its kept writes survive it.

The plain crash (kill -9 mid-run, another worker finishes from the last checkpoint without a
duplicate contribution) is proved by tests/deliberation/test_worker.py::
test_a_worker_killed_hard_mid_run_is_replaced_and_the_session_finishes_once; this is the harder
case, where the writes of the dead worker exist only in its outbox mirror in Redis.
"""

from __future__ import annotations

import time

import pytest

from deliberation.outbox import outbox_key
from sessions_app.models import Status
from tests.deliberation.test_worker import create_and_start, events, row, wait_until
from tests.faults.test_postgres_outage import (
    SETTLE_SECONDS,
    assert_every_engine_event_once_in_order,
    kept_writes,
)
from tests.faults.wiring import REAL_BROKER_URL, database_env_via
from tests.processes import start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "BO1_LEASE_TTL": "3",
    "BO1_REAPER_INTERVAL": "1",
    "CELERY_BROKER_URL": REAL_BROKER_URL,
}


def test_worker_killed_hard_during_a_postgres_outage_is_replaced_and_loses_no_kept_write(
    api, pg_proxy, direct_redis
):
    doomed = start_worker(
        name="doomed-worker",
        BO1_OFFLINE_LATENCY_MS="200",
        **WORKER_ENV,
        **database_env_via(pg_proxy),
    )
    try:
        session_id = create_and_start(api, max_rounds=3)
        wait_until(lambda: row(session_id).contribution_count >= 2, what="contributions")
        pg_proxy.cut()
        time.sleep(SETTLE_SECONDS)
        written_before = len(events(session_id))
        wait_until(
            lambda: len(kept_writes(direct_redis, session_id)) >= 3, timeout=30, what="kept writes"
        )
    finally:
        doomed.kill_hard()
    pg_proxy.restore()

    # The dead worker's writes exist only in its Redis mirror; PostgreSQL has not seen them.
    kept = kept_writes(direct_redis, session_id)
    kept_events = [event for op in kept for event in op.events]
    assert kept_events
    assert row(session_id).status == Status.RUNNING
    assert len(events(session_id)) == written_before

    rescue = start_worker(name="rescue-worker", **WORKER_ENV)
    try:
        wait_until(lambda: row(session_id).status == Status.COMPLETED, what="rescued to completed")
    finally:
        rescue.stop()

    evs = assert_every_engine_event_once_in_order(session_id)
    by_key = {e.idempotency_key: e for e in evs}
    for kept_event in kept_events:
        stored = by_key[kept_event.idempotency_key]
        assert (stored.event_type, stored.data) == (kept_event.event_type, kept_event.data)
    assert not direct_redis.exists(outbox_key(session_id))
    log = rescue.log()
    assert f"Applied {len(kept)} kept writes for session {session_id}" in log
    assert "Picking up session" in log
