"""PostgreSQL down when a request arrives, or lost in the middle of one: 503, never a half-write."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import close_old_connections, connection
from django.db.models.signals import post_save, pre_save
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sessions_app import services
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.factories import SessionFactory, UserFactory
from tests.faults.proxy import FaultProxy
from tests.faults.wiring import database_env_via, database_in_process_via
from tests.processes import ManagedProcess, start_web

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "Should we replace our on-call rotation with a follow-the-sun support model?"


def assert_store_unavailable(response: Any, what: str) -> None:
    """A 503 that says which store failed and when to retry (httpx or DRF test response)."""
    assert response.status_code == 503, f"{what}: {response.status_code} {response.content[:300]!r}"
    body = response.json()
    assert "database unavailable" in body["reason"], (what, body)
    assert body["detail"]
    assert response.headers["Retry-After"]


@pytest.fixture
def web_behind_pg_proxy(pg_proxy: FaultProxy) -> Iterator[tuple[ManagedProcess, str]]:
    """The production web server, its PostgreSQL connections through the proxy."""
    process, url = start_web(**database_env_via(pg_proxy))
    yield process, url
    process.stop()


def test_web_server_answers_503_with_the_reason_for_every_endpoint_while_postgres_is_down(
    user, pg_proxy, web_behind_pg_proxy
):
    process, base = web_behind_pg_proxy
    session = SessionFactory(user=user)
    staff = UserFactory(username="operator", is_staff=True, is_superuser=True)
    admin_client = APIClient()
    admin_client.force_login(staff)
    admin_cookie = admin_client.cookies["sessionid"].value
    token = Token.objects.create(user=user).key
    headers = {"Authorization": f"Token {token}"}
    sid = session.id
    with httpx.Client(base_url=base, headers=headers, timeout=15) as http:
        assert http.get(f"/api/v1/sessions/{sid}").status_code == 200  # warm: it works

        pg_proxy.cut()
        requests = [
            ("POST", "/api/v1/sessions", {"problem_statement": PROBLEM}),
            ("GET", "/api/v1/sessions", None),
            ("GET", f"/api/v1/sessions/{sid}/events", None),
            ("GET", f"/api/v1/sessions/{sid}/export", None),
            ("GET", f"/api/v1/sessions/{sid}/stream", None),
            ("POST", f"/api/v1/sessions/{sid}/start", None),
            ("POST", f"/api/v1/sessions/{sid}/kill", {"reason": "test"}),
            ("DELETE", f"/api/v1/sessions/{sid}", None),
        ]
        for method, path, body in requests:
            response = http.request(method, path, json=body)
            assert_store_unavailable(response, f"{method} {path}")
        admin = http.get("/admin/", headers={"Cookie": f"sessionid={admin_cookie}"})
        assert admin.status_code == 503, admin.text[:300]
        health = http.get("/api/health/db")
        assert health.status_code == 503 and "database unavailable" in health.json()["reason"]
        assert http.get("/api/health").status_code == 503
        assert http.get("/api/health/redis").status_code == 200

        pg_proxy.restore()
        assert http.get("/api/health/db").status_code == 200
        assert http.get(f"/api/v1/sessions/{sid}").json()["status"] == Status.CREATED
        assert (
            http.get("/admin/", headers={"Cookie": f"sessionid={admin_cookie}"}).status_code == 200
        )

    # Nothing was half-written: no new session, the existing one untouched.
    assert not DeliberationSession.objects.filter(problem_statement=PROBLEM).exists()
    session.refresh_from_db()
    assert session.status == Status.CREATED and session.last_sequence == 0
    assert not SessionEvent.objects.filter(session=session).exists()
    assert " 500 " not in process.log()
    assert "Traceback" not in process.log()


@pytest.fixture
def database_through(pg_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """This test process's own database connection goes through the proxy."""
    with database_in_process_via(pg_proxy):
        yield pg_proxy


def test_a_connection_lost_between_the_events_and_the_status_write_leaves_nothing_behind(
    api, user, database_through, monkeypatch
):
    session = SessionFactory(user=user)
    append = services._append_events

    def append_then_lose_the_database(*args, **kwargs):
        rows = append(*args, **kwargs)  # the killed event is inserted, uncommitted...
        database_through.cut()  # ...and PostgreSQL goes away before the status update
        return rows

    monkeypatch.setattr(services, "_append_events", append_then_lose_the_database)
    response = api.post(f"/api/v1/sessions/{session.id}/kill", {"reason": "x"}, format="json")
    assert_store_unavailable(response, "kill")

    database_through.restore()
    session.refresh_from_db()
    assert session.status == Status.CREATED and session.last_sequence == 0
    assert not SessionEvent.objects.filter(session=session).exists()


@pytest.mark.parametrize(
    ("signal", "first_answer"),
    [
        # The link drops as the INSERT is sent: it never runs, and the client hears 503.
        (pre_save, 503),
        # The link drops just after the INSERT, which commits on its own (one statement, its
        # counter trigger included): the row is whole, and the client hears 201.
        (post_save, 201),
    ],
    ids=["before-the-insert", "after-the-insert"],
)
def test_a_connection_lost_during_create_leaves_one_whole_session_or_none(
    api, database_through, signal, first_answer
):
    def lose_the_database(sender, instance, **kwargs):
        database_through.cut()

    def create() -> Any:
        return api.post(
            "/api/v1/sessions",
            {"problem_statement": PROBLEM},
            format="json",
            headers={"Idempotency-Key": "retry-after-outage"},
        )

    signal.connect(lose_the_database, sender=DeliberationSession, dispatch_uid="lose-db")
    try:
        response = create()
    finally:
        signal.disconnect(sender=DeliberationSession, dispatch_uid="lose-db")
    # The proxy's reset reaches this process's socket once its pump thread lets go of the
    # connection (up to 0.1 s after the cut); a real server's goes out at once.
    deadline = time.monotonic() + 2
    while connection.connection is not None and time.monotonic() < deadline:
        if not connection._idle_socket_is_quiet():
            break
        time.sleep(0.01)
    database_through.restore()
    # What the server does at the next request's start (the test client leaves it out): drop
    # the connection the cut broke, and check the one it keeps before its first query.
    close_old_connections()
    if first_answer == 503:
        assert_store_unavailable(response, "create")
        assert not DeliberationSession.objects.filter(problem_statement=PROBLEM).exists()
        # The client retries with its key once PostgreSQL is back.
        assert create().status_code == 201
    else:
        assert response.status_code == 201, response.content[:300]
    # Exactly one session results, however often the client retries.
    replay = create()
    assert replay.status_code == 200, replay.content[:300]
    rows = DeliberationSession.objects.filter(problem_statement=PROBLEM)
    assert rows.count() == 1
    assert replay.json()["id"] == rows.get().id
