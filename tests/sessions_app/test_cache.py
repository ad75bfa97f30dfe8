"""The Redis side: key names, TTLs, plain JSON; and everything still works when Redis is down."""

import json
import logging

import pytest
import redis
from django.conf import settings
from django.core.cache import caches

from sessions_app.cache import SessionCache, entry_key, stream_key
from sessions_app.models import DeliberationSession, Status
from sessions_app.selectors import session_detail_for_user, session_list_for_user
from sessions_app.services import (
    NewEvent,
    session_create,
    session_record_progress,
    session_transition,
)
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

STATEMENT = "Should we rewrite the billing system this quarter?"
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings):
    """The cache points at a port nothing listens on (the settings change rebuilds the cache)."""
    caches = {**settings.CACHES, "default": {**settings.CACHES["default"]}}
    caches["default"]["LOCATION"] = CLOSED_PORT_URL
    settings.CACHES = caches
    yield
    # The `settings` fixture restores CACHES, and Django rebuilds the cache handler again.


def test_every_key_of_a_session_names_it_expires_and_holds_plain_json(
    user, clean_redis, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        session, _ = session_create(user=user, problem_statement=STATEMENT)
    with django_capture_on_commit_callbacks(execute=True):
        session_transition(session_id=session.id, to=Status.QUEUED)
        session_transition(session_id=session.id, to=Status.RUNNING)
        session_record_progress(session_id=session.id, events=[NewEvent("contribution")])
    keys = [k.decode() for k in clean_redis.keys("*")]
    assert sorted(keys) == SessionCache.keys_for(session.id)
    assert len(keys) == 2  # the hot entry and the event stream
    for key in keys:
        assert session.id in key
        assert 0 < clean_redis.ttl(key) <= settings.SESSION_CACHE_TTL
    [entry] = [k for k in keys if k.endswith(entry_key(session.id))]
    value = json.loads(clean_redis.get(entry))
    assert value["id"] == session.id and value["status"] == Status.RUNNING


def test_the_event_stream_carries_each_event_as_json_under_its_sequence(user, clean_redis):
    session = SessionFactory(user=user)
    SessionCache.append_events(
        session.id,
        [{"sequence": 1, "event_type": "session_started", "data": {}, "created_at": "x"}],
    )
    [(stream_id, fields)] = clean_redis.xrange(f"bo1:session:{session.id}:stream")
    assert stream_id == b"1-0"
    assert json.loads(fields[b"event"])["event_type"] == "session_started"


def test_the_hot_entry_ttl_is_session_cache_ttl(user, settings):
    settings.SESSION_CACHE_TTL = 120
    session = SessionFactory(user=user)
    SessionCache.set(session.id, {"id": session.id})
    assert 110 <= SessionCache.ttl(session.id) <= 120


def test_add_never_replaces_an_existing_entry():
    SessionCache.set("bo1_x", {"status": "completed"})
    assert SessionCache.add("bo1_x", {"status": "running"}) is False
    assert SessionCache.get("bo1_x") == {"status": "completed"}


def test_purge_deletes_every_key_of_the_session_and_only_those(user, clean_redis):
    mine, other = SessionFactory(user=user), SessionFactory(user=user)
    for session in (mine, other):
        SessionCache.set(session.id, {"id": session.id})
        SessionCache.append_events(session.id, [{"sequence": 1}])
    assert SessionCache.purge(mine.id) == 2
    assert SessionCache.keys_for(mine.id) == []
    assert len(SessionCache.keys_for(other.id)) == 2


# --- Redis unreachable --------------------------------------------------------------------------


def test_with_redis_down_create_still_writes_postgresql_and_logs_the_skip(
    user, redis_down, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="sessions_app")
    with django_capture_on_commit_callbacks(execute=True):
        session, created = session_create(user=user, problem_statement=STATEMENT)
    assert created and DeliberationSession.objects.filter(pk=session.id).exists()
    assert any(r.name == "sessions_app.cache" and r.levelno >= logging.WARNING
               for r in caplog.records)  # fmt: skip
    assert f"Created session: {session.id} for user: {user.pk}" in caplog.text
    assert "Redis write skipped" in caplog.text


def test_with_redis_down_transitions_and_progress_still_commit(
    user, redis_down, django_capture_on_commit_callbacks
):
    session = SessionFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        session_transition(session_id=session.id, to=Status.QUEUED)
        session_transition(session_id=session.id, to=Status.RUNNING)
        session_record_progress(session_id=session.id, events=[NewEvent("contribution")])
    row = DeliberationSession.objects.get(pk=session.id)
    assert row.status == Status.RUNNING and row.last_sequence == 1


def test_with_redis_down_list_and_detail_answer_from_postgresql(user, redis_down, caplog):
    sessions = [SessionFactory(user=user, synthesis_text="Hold.") for _ in range(3)]
    page = session_list_for_user(user=user)
    assert [s["id"] for s in page.sessions] == [s.id for s in reversed(sessions)]
    assert page.total == 3
    detail = session_detail_for_user(user=user, session_id=sessions[0].id)
    assert detail["synthesis"] == "Hold."
    assert "Exception ignored" in caplog.text  # logged by the cache, never raised


def test_with_redis_down_every_cache_helper_answers_instead_of_raising(user, redis_down):
    assert SessionCache.get("bo1_x") is None
    assert SessionCache.get_many(["bo1_x", "bo1_y"]) == {}
    assert SessionCache.set("bo1_x", {"a": 1}) is False
    assert SessionCache.add("bo1_x", {"a": 1}) is False
    assert SessionCache.ttl("bo1_x") is None
    assert SessionCache.keys_for("bo1_x") == []
    assert SessionCache.purge("bo1_x") == 0
    assert SessionCache.update_live("bo1_x", {"a": 2}) is False
    assert SessionCache.hot_session_ids() == []
    SessionCache.delete("bo1_x")
    SessionCache.append_events("bo1_x", [{"sequence": 1}])


def test_with_redis_down_the_api_still_creates_lists_and_shows_sessions(
    api, user, redis_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/sessions", {"problem_statement": STATEMENT}, format="json")
    assert created.status_code == 201
    session_id = created.json()["id"]
    listed = api.get("/api/v1/sessions")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["sessions"]] == [session_id]
    detail = api.get(f"/api/v1/sessions/{session_id}")
    assert detail.status_code == 200 and detail.json()["problem_statement"] == STATEMENT
    assert api.get("/api/health/redis").status_code == 503


def test_a_step_writes_its_events_and_its_entry_in_one_round_trip(user, clean_redis, monkeypatch):
    session = SessionFactory(user=user)
    sends = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(connection, command, *args, **kwargs):
        sends.append(command)
        return send(connection, command, *args, **kwargs)

    calls_before = clean_redis.info("commandstats")
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    SessionCache.append_events(
        session.id, [{"sequence": 1}, {"sequence": 2}], entry={"id": session.id}
    )
    monkeypatch.undo()
    calls = clean_redis.info("commandstats")
    assert len(sends) == 1  # one write to Redis, then one read of the replies

    def count(command):
        return calls.get(f"cmdstat_{command}", {}).get("calls", 0) - calls_before.get(
            f"cmdstat_{command}", {}
        ).get("calls", 0)

    assert (count("xadd"), count("expire"), count("set")) == (2, 1, 1)
    assert SessionCache.get(session.id) == {"id": session.id}  # readable through the cache
    assert 0 < SessionCache.ttl(session.id) <= settings.SESSION_CACHE_TTL
    assert [s for s, _ in clean_redis.xrange(stream_key(session.id))] == [b"1-0", b"2-0"]


def test_an_entry_without_events_leaves_the_stream_alone(user, clean_redis):
    session = SessionFactory(user=user)
    SessionCache.append_events(session.id, [], entry={"id": session.id, "status": "running"})
    assert SessionCache.get(session.id)["status"] == "running"
    assert not clean_redis.exists(stream_key(session.id))


def test_with_redis_down_a_step_logs_both_skipped_writes(user, redis_down, caplog):
    SessionCache.append_events("bo1_x", [{"sequence": 1}], entry={"id": "bo1_x"})
    assert "Redis stream write skipped for session bo1_x" in caplog.text
    assert "Redis write skipped for session bo1_x" in caplog.text


# --- the worker's live progress while PostgreSQL lags ---------------------------------------------


def test_live_progress_overlays_its_fields_and_keeps_the_rest(user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    SessionCache.set(session.id, {"id": session.id, "status": "running", "round_number": 1})
    assert SessionCache.update_live(session.id, {"round_number": 2, "contributions": 5})
    assert SessionCache.get(session.id) == {
        "id": session.id,
        "status": "running",
        "round_number": 2,
        "contributions": 5,
    }
    assert 0 < SessionCache.ttl(session.id) <= settings.SESSION_CACHE_TTL


def test_live_progress_writes_nothing_when_there_is_no_entry(user, clean_redis):
    assert SessionCache.update_live("bo1_missing", {"round_number": 2}) is False
    assert clean_redis.keys("*") == []


def test_live_progress_never_undoes_a_write_made_between_its_read_and_its_write(user, monkeypatch):
    """A status change lands while the worker's update is in flight: both survive."""
    session = SessionFactory(user=user, status=Status.RUNNING)
    SessionCache.set(session.id, {"id": session.id, "status": "running", "round_number": 1})
    codec = caches["default"].client
    decode = codec.decode
    raced = []

    def decode_then_someone_pauses(value):
        entry = decode(value)
        if not raced:  # another process writes the entry right after our read
            raced.append(True)
            SessionCache.set(session.id, {**entry, "status": "paused"})
        return entry

    monkeypatch.setattr(codec, "decode", decode_then_someone_pauses)
    assert SessionCache.update_live(session.id, {"round_number": 2})
    monkeypatch.undo()
    entry = SessionCache.get(session.id)
    assert (entry["status"], entry["round_number"]) == ("paused", 2)


def test_with_redis_down_live_progress_is_skipped_and_logged(redis_down, caplog):
    assert SessionCache.update_live("bo1_x", {"round_number": 2}) is False
    assert "Redis live update skipped for session bo1_x" in caplog.text
