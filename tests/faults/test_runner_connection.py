"""The runner's own database connection after PostgreSQL dropped it: the next write is kept, not
a crash. (After the server closes a connection, its next use raises InterfaceError, which is not
a DatabaseError.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from deliberation.lease import Lease
from deliberation.outbox import Outbox
from deliberation.runner import SessionHost
from sessions_app.models import DeliberationSession, SessionEvent, Status
from sessions_app.services import session_transition
from tests.factories import SessionFactory
from tests.faults.wiring import database_in_process_via

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def host(user) -> Iterator[SessionHost]:
    session = SessionFactory(user=user)
    session_transition(session_id=session.id, to=Status.QUEUED)
    session = session_transition(session_id=session.id, to=Status.RUNNING)
    lease = Lease(session.id, ttl=30)
    assert lease.acquire()
    yield SessionHost(session, lease, Outbox(session.id))
    lease.release()


def step(host: SessionHost, n: int) -> None:
    host.emit("contribution", {"round": 1, "persona_code": f"p{n}", "content": "..."})
    host.save_checkpoint({"total_cost": "0", "total_tokens": n})


@pytest.mark.parametrize("first_to_notice", ["status check", "write"])
def test_the_runner_keeps_its_writes_whichever_call_meets_the_outage_first(
    host, pg_proxy, first_to_notice, monkeypatch
):
    with database_in_process_via(pg_proxy):
        assert DeliberationSession.objects.filter(pk=host.session_id).exists()  # connected
        # The link drops just after a health check passed (CONN_HEALTH_CHECKS checks before a
        # query, not during it): the first query then fails on the connection itself.
        monkeypatch.setattr(connection, "is_usable", lambda: True)
        pg_proxy.cut()
        if first_to_notice == "status check":
            assert host.should_stop() is None  # unknown while PostgreSQL is away: go on
        step(host, 1)
        step(host, 2)
        assert len(host.outbox.pending) == 2
        assert host.outbox.last_refusal == "database"
        pg_proxy.restore()
        monkeypatch.undo()
        step(host, 3)
        assert not host.outbox.pending
    stored = list(SessionEvent.objects.filter(session_id=host.session_id).order_by("sequence"))
    assert [(e.sequence, e.idempotency_key) for e in stored] == [
        (1, "engine:1"),
        (2, "engine:2"),
        (3, "engine:3"),
    ]
