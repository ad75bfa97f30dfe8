"""The PostgreSQL backend: a health check by polling the idle socket instead of `SELECT 1`, and
statements prepared once per connection."""

import time
from unittest import mock

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from bo1site.serving.db.base import DatabaseWrapper
from bo1site.serving.db.prepared import _numbered, execute_prepared


@pytest.fixture
def wrapper(db):
    """A connection of its own to the test database, so the test can have it killed."""
    conn = connections.create_connection("default")
    assert isinstance(conn, DatabaseWrapper)
    conn.ensure_connection()
    yield conn
    conn.close()


def start_of_request(conn):
    """What Django does before a request's first query on a persistent connection."""
    conn.health_check_done = False


def test_the_settings_use_this_backend():
    assert connections["default"].__class__ is DatabaseWrapper


def test_a_quiet_connection_passes_without_a_round_trip(wrapper):
    assert wrapper.health_check_enabled
    start_of_request(wrapper)
    with mock.patch.object(DatabaseWrapper, "is_usable", side_effect=AssertionError("queried")):
        wrapper.close_if_health_check_failed()
    assert wrapper.connection is not None
    assert wrapper.health_check_done
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)


def test_a_connection_the_server_dropped_is_replaced_before_the_query(wrapper):
    pid = wrapper.connection.get_backend_pid()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while wrapper._idle_socket_is_quiet() and time.monotonic() < deadline:
        time.sleep(0.01)
    start_of_request(wrapper)
    wrapper.close_if_health_check_failed()
    assert wrapper.connection is None  # closed, not handed to the request
    with wrapper.cursor() as cursor:  # and the request's query gets a fresh connection
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_closed_connection_is_not_quiet(wrapper):
    wrapper.connection.close()
    assert not wrapper._idle_socket_is_quiet()
    start_of_request(wrapper)
    wrapper.close_if_health_check_failed()
    assert wrapper.connection is None


def prepared_on_server(cursor):
    cursor.execute("SELECT name FROM pg_prepared_statements")
    return {name for (name,) in cursor.fetchall()}


def test_numbered_placeholders():
    assert _numbered("a = %s AND b = %s LIMIT %s") == "a = $1 AND b = $2 LIMIT $3"
    assert _numbered("SELECT 1") == "SELECT 1"


def test_a_statement_is_prepared_once_per_connection(wrapper):
    with wrapper.cursor() as cursor:
        for n in (1, 2, 3):
            execute_prepared(cursor, "bo1_test_echo", "SELECT %s::int + %s::int", [n, 10])
            assert cursor.fetchone() == (n + 10,)
        assert wrapper.connection.prepared == {"bo1_test_echo"}
        assert "bo1_test_echo" in prepared_on_server(cursor)
    # A new connection starts with nothing prepared, and prepares again on first use.
    wrapper.close()
    with wrapper.cursor() as cursor:
        assert "bo1_test_echo" not in prepared_on_server(cursor)
        execute_prepared(cursor, "bo1_test_echo", "SELECT %s::int + %s::int", [1, 1])
        assert cursor.fetchone() == (2,)


def test_preparing_is_not_counted_as_a_query_of_the_request(wrapper):
    with CaptureQueriesContext(wrapper) as queries, wrapper.cursor() as cursor:
        execute_prepared(cursor, "bo1_test_count", "SELECT %s::text", ["x"])
        assert cursor.fetchone() == ("x",)
    assert [q["sql"] for q in queries.captured_queries] == ["EXECUTE bo1_test_count('x')"]


def test_prepared_statements_can_be_switched_off(wrapper, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with wrapper.cursor() as cursor:
        execute_prepared(cursor, "bo1_test_off", "SELECT %s::int", [7])
        assert cursor.fetchone() == (7,)
        assert "bo1_test_off" not in prepared_on_server(cursor)
    assert wrapper.connection.prepared == set()
