"""The ASGI entry point: sync views on a pool of long-lived threads, async views on the loop."""

import asyncio
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections

from bo1site.serving.handler import PooledASGIHandler


def http_scope(path, method="GET"):
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip


async def call(app, path):
    communicator = ApplicationCommunicator(app, http_scope(path))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=10)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=10)
    return start["status"], body


@pytest.fixture
def app():
    handler = PooledASGIHandler(threads=1)
    yield handler
    handler._executor.submit(connections.close_all).result()
    handler._executor.shutdown()


@pytest.mark.django_db(transaction=True)
def test_every_view_runs_on_the_pool_the_event_stream_too(app, monkeypatch):
    threads = {}
    respond = app._respond

    def recording(scope, body_file):
        threads[scope["path"]] = threading.current_thread().name
        return respond(scope, body_file)

    monkeypatch.setattr(app, "_respond", recording)
    for path in (
        "/api/v1/sessions/bo1_00000000-0000-4000-8000-000000000000/stream",
        "/api/v1/sessions",
        "/api/health",
        "/nope",
    ):
        asyncio.run(call(app, path))
    assert len(threads) == 4
    assert all(name.startswith("django-sync") for name in threads.values()), threads


@pytest.mark.django_db(transaction=True)
def test_sync_views_run_on_the_pool_and_keep_their_connection(app):
    status, body = asyncio.run(call(app, "/api/health/db"))
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"

    def pool_state():
        connection = connections["default"]
        return threading.current_thread().name, connection.connection

    name, first = app._executor.submit(pool_state).result()
    assert name.startswith("django-sync")
    assert first is not None  # still open after the request finished (CONN_MAX_AGE)
    status, _ = asyncio.run(call(app, "/api/health/db"))
    assert status == 200
    assert app._executor.submit(pool_state).result()[1] is first  # the same connection, reused


@pytest.mark.django_db(transaction=True)
def test_an_unknown_path_is_django_404_from_the_pool(app):
    status, _ = asyncio.run(call(app, "/no/such/page"))
    assert status == 404
