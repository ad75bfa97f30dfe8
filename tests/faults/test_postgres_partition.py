"""A PostgreSQL that stops answering without closing the connection (a network partition: every
packet dropped, nothing reset): a request is a 503 with the reason within seconds, and a
worker's step goes to its outbox, instead of either waiting until TCP gives up (minutes)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.deliberation.test_worker import create_and_start, row, wait_until
from tests.factories import SessionFactory
from tests.faults.proxy import FaultProxy
from tests.faults.test_postgres_at_request import assert_store_unavailable
from tests.faults.test_postgres_outage import kept_writes
from tests.faults.wiring import REAL_BROKER_URL, database_env_via
from tests.processes import ManagedProcess, start_web, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# DATABASE_TCP_USER_TIMEOUT (5 s) and DATABASE_CONNECT_TIMEOUT (3 s), with room for a busy machine;
# without them a request waits for the kernel's retransmissions to give up (about 15 minutes).
WITHIN_SECONDS = 12


@pytest.fixture
def web_behind_pg_proxy(pg_proxy: FaultProxy) -> Iterator[str]:
    process, url = start_web(**database_env_via(pg_proxy))
    yield url
    process.stop()


def test_a_request_during_a_partition_is_a_503_within_seconds(user, pg_proxy, web_behind_pg_proxy):
    session = SessionFactory(user=user)
    token = Token.objects.create(user=user).key
    detail = f"/api/v1/sessions/{session.id}/events"
    with httpx.Client(
        base_url=web_behind_pg_proxy, headers={"Authorization": f"Token {token}"}, timeout=60
    ) as http:
        for _ in range(4):  # the server holds open connections now
            assert http.get(detail).status_code == 200

        pg_proxy.cut("drop")
        # The first requests meet an open connection whose bytes are never acknowledged, the
        # later ones a connection attempt that is never answered.
        for attempt in range(3):
            began = time.monotonic()
            response = http.get(detail)
            elapsed = time.monotonic() - began
            assert_store_unavailable(response, f"request {attempt} during the partition")
            assert elapsed < WITHIN_SECONDS, f"request {attempt} took {elapsed:.1f} s"

        pg_proxy.restore()
        wait_until(lambda: http.get(detail).status_code == 200, what="answers after the partition")


@pytest.fixture
def worker_behind_pg_proxy(pg_proxy: FaultProxy) -> Iterator[ManagedProcess]:
    process = start_worker(
        name="pg-partition-worker",
        BO1_OFFLINE_LATENCY_MS="300",
        BO1_LEASE_TTL="5",
        BO1_REAPER_INTERVAL="1",
        CELERY_BROKER_URL=REAL_BROKER_URL,
        **database_env_via(pg_proxy),
    )
    yield process
    process.stop()


def test_a_worker_step_during_a_partition_goes_to_its_outbox_and_lands_after(
    api, pg_proxy, worker_behind_pg_proxy, direct_redis
):
    session_id = create_and_start(api, max_rounds=3)
    wait_until(lambda: row(session_id).contribution_count >= 1, what="a first contribution")

    pg_proxy.cut("drop")
    began = time.monotonic()
    wait_until(
        lambda: kept_writes(direct_redis, session_id),
        timeout=WITHIN_SECONDS,
        what="a step kept in the outbox during the partition",
    )
    assert time.monotonic() - began < WITHIN_SECONDS
    assert worker_behind_pg_proxy.proc.poll() is None, "the worker died during the partition"

    pg_proxy.restore()
    wait_until(lambda: row(session_id).status == "completed", timeout=90, what="completed after")
    assert "PostgreSQL refused a write" in worker_behind_pg_proxy.log()
