"""The tables: names, ids, constraints and indexes as DESIGN.md gives them; clean migrations."""

import re
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from sessions_app.models import DeliberationSession, SessionEvent, new_session_id
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

ID_PATTERN = re.compile(r"^bo1_([0-9a-f-]{36})$")


def assert_session_id(value: str) -> None:
    match = ID_PATTERN.match(value)
    assert match, value
    assert uuid.UUID(match.group(1)).version == 4


def test_new_session_ids_are_bo1_prefixed_uuid4s_and_unique():
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert_session_id(value)


def test_a_session_has_its_id_before_it_is_written_and_keeps_it(user):
    session = DeliberationSession(user=user, problem_statement="Should we move to Lisbon?")
    assigned = session.id
    assert_session_id(assigned)
    assert not DeliberationSession.objects.filter(pk=assigned).exists()
    session.save(force_insert=True)
    assert DeliberationSession.objects.get(pk=assigned).problem_statement.startswith("Should")


def test_tables_are_named_sessions_and_session_events():
    assert DeliberationSession._meta.db_table == "sessions"
    assert SessionEvent._meta.db_table == "session_events"
    tables = set(connection.introspection.table_names())
    assert {"sessions", "session_events"} <= tables


def test_the_seeds_sql_lists_the_newest_sessions_first(user):
    sessions = [SessionFactory(user=user) for _ in range(7)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM sessions ORDER BY created_at DESC LIMIT 5")
        columns = [c.name for c in cursor.description]
        rows = cursor.fetchall()
    assert len(rows) == 5
    ids = [row[columns.index("id")] for row in rows]
    assert ids == [s.id for s in reversed(sessions)][:5]
    for column in (
        "id", "user_id", "problem_statement", "problem_context", "status", "phase",
        "round_number", "total_cost", "total_tokens", "synthesis_text", "final_recommendation",
        "error", "pause_reason", "created_at", "updated_at", "started_at", "completed_at",
        "checkpoint",
    ):  # fmt: skip
        assert column in columns


def test_json_columns_are_jsonb_and_cost_is_numeric():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('sessions', 'session_events')"
        )
        types = {(table, column): kind for table, column, kind in cursor.fetchall()}
    assert types["sessions", "problem_context"] == "jsonb"
    assert types["sessions", "error"] == "jsonb"
    assert types["sessions", "checkpoint"] == "jsonb"
    assert types["session_events", "data"] == "jsonb"
    assert types["sessions", "total_cost"] == "numeric"
    assert types["sessions", "id"] in {"character varying", "text"}


def test_an_event_sequence_is_unique_within_its_session(user):
    session = SessionFactory(user=user)
    SessionEvent.objects.create(session=session, sequence=1, event_type="session_started")
    with pytest.raises(IntegrityError), transaction.atomic():
        SessionEvent.objects.create(session=session, sequence=1, event_type="contribution")


def test_the_same_sequence_number_is_fine_in_another_session(user):
    first, second = SessionFactory(user=user), SessionFactory(user=user)
    SessionEvent.objects.create(session=first, sequence=1, event_type="session_started")
    SessionEvent.objects.create(session=second, sequence=1, event_type="session_started")
    assert SessionEvent.objects.filter(sequence=1).count() == 2


def test_indexes_serve_a_users_newest_sessions_and_status_filters():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "sessions")
    indexes = {name: c["columns"] for name, c in constraints.items() if c["index"]}
    assert indexes["sessions_user_recent"] == ["user_id", "created_at", "id"]
    assert indexes["sessions_user_status"] == ["user_id", "status", "created_at"]
    assert indexes["sessions_status"][0] == "status"
    with connection.cursor() as cursor:
        events = connection.introspection.get_constraints(cursor, "session_events")
    unique = [c["columns"] for c in events.values() if c["unique"] and not c["primary_key"]]
    assert ["session_id", "sequence"] in unique


def test_migrate_a_second_time_changes_nothing():
    out = StringIO()
    call_command("migrate", interactive=False, stdout=out)
    call_command("migrate", interactive=False, stdout=out)
    assert out.getvalue().count("No migrations to apply.") == 2


def test_models_and_migrations_agree():
    out = StringIO()
    # Exits with SystemExit(1) when a model change has no migration.
    call_command("makemigrations", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()
