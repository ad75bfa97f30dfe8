"""The PostgreSQL backend's health check: a poll of the idle socket instead of `SELECT 1`."""

import time
from unittest import mock

import pytest
from django.db import connections

from bo1site.db.base import DatabaseWrapper


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
