"""import_bo1 on the bo1 fixture: users, sessions, statuses, phases, votes and the merge rule."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from importer.models import ImportedSession, SessionVote
from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent
from tests.factories import UserFactory
from tests.importer.conftest import expected, import_json, run_import
from vocabulary import FINISHED_STATUSES

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = expected()
BY_CASE = {}
for item in EXPECTED["sessions"]:
    BY_CASE.setdefault(item["case"], []).append(item)


def test_every_session_is_imported_with_the_status_and_phase_its_user_saw(source):
    code, summary = import_json(source)

    assert code == 0, summary
    assert summary["sessions"] == {
        "imported": len(EXPECTED["sessions"]),
        "updated": 0,
        "unchanged": 0,
        "deleted_here": 0,
        "skipped": 0,
    }
    for item in EXPECTED["sessions"]:
        session = DeliberationSession.objects.get(pk=item["id"])
        assert session.status == item["status"], item["case"]
        if item["phase_accept"]:
            assert session.phase in item["phase_accept"], (item["case"], session.phase)
        assert session.problem_statement == item["problem_statement"]
        assert session.user.email.lower() == item["user_email_lower"]
        assert bool(session.synthesis_text) == item["synthesis"], item["case"]
        if item["synthesis_text"]:
            assert session.synthesis_text == item["synthesis_text"]
        assert (session.final_recommendation or None) == item["final_recommendation"]
        if item["total_cost"] is not None:
            assert session.total_cost == Decimal(str(item["total_cost"])), item["case"]
        if item["round_number"] is not None:
            assert session.round_number == item["round_number"]
        assert SessionVote.objects.filter(session=session).count() == item["votes"], item["case"]
        for stamp in ("created_at", "updated_at", "status_changed_at"):
            assert getattr(session, stamp).tzinfo is not None
        if session.status in FINISHED_STATUSES and session.status != "deleted":
            assert session.completed_at is not None, item["case"]


def test_users_are_matched_by_email_in_any_case_and_missing_ones_created(source):
    alice = UserFactory(username="alice", email="alice@example.com")

    code, summary = import_json(source)

    assert code == 0
    assert summary["users"] == {"matched": 1, "created": 2}
    assert DeliberationSession.objects.filter(user=alice).count() == sum(
        1 for s in EXPECTED["sessions"] if s["user_email_lower"] == "alice@example.com"
    )
    carol = User.objects.get(email__iexact="carol.smith@example.org")
    assert carol.username == carol.email == "Carol.Smith@Example.org"
    assert not carol.has_usable_password()


def test_running_sessions_become_failed_as_interrupted_before_import(source):
    import_json(source)

    for item in BY_CASE["running"]:
        session = DeliberationSession.objects.get(pk=item["id"])
        assert session.status == "failed"
        assert session.error["code"] == "interrupted_before_import"


def test_terminated_becomes_killed_with_the_termination_reason(source):
    import_json(source)

    for item in BY_CASE["terminated"] + BY_CASE["killed"]:
        session = DeliberationSession.objects.get(pk=item["id"])
        assert session.status == "killed"
        reason = item["termination_reason"] or item["kill_reason"]
        assert session.error["message"] == reason
        assert session.completed_at is not None


def test_redis_live_fields_win_over_a_newer_looking_postgres_row(source):
    (item,) = BY_CASE["redis_newer_than_pg"]
    (pausedc,) = BY_CASE["paused_clarification"]

    import_json(source)

    session = DeliberationSession.objects.get(pk=item["id"])
    assert session.status == "paused" and session.phase == "discussion"
    assert session.pause_reason == "user"
    waiting = DeliberationSession.objects.get(pk=pausedc["id"])
    assert waiting.pause_reason == "clarification"
    assert "budget" in waiting.clarification_question


def test_sessions_held_by_one_store_only_are_imported(source):
    import_json(source)

    (redis_only,) = BY_CASE["redis_only"]
    (pg_only,) = BY_CASE["pg_only"]
    assert DeliberationSession.objects.get(pk=redis_only["id"]).status == "completed"
    assert ImportedSession.objects.get(session_id=redis_only["id"]).stores == "redis"
    assert ImportedSession.objects.get(session_id=pg_only["id"]).stores == "postgres"
    completed = BY_CASE["completed"][0]
    assert ImportedSession.objects.get(session_id=completed["id"]).stores == "postgres+redis"


def test_the_killed_sessions_reason_comes_from_redis_where_postgres_never_had_it(source):
    with source.pg() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sessions WHERE kill_reason IS NOT NULL")
        assert cur.fetchone()[0] == 0
    import_json(source)
    for item in BY_CASE["killed"]:
        assert (
            DeliberationSession.objects.get(pk=item["id"]).error["message"] == item["kill_reason"]
        )


def test_only_one_store_given_imports_what_that_store_has(source):
    code, summary = import_json_pg_only(source)

    assert code == 0, summary
    ids = set(DeliberationSession.objects.values_list("id", flat=True))
    assert BY_CASE["redis_only"][0]["id"] not in ids
    assert BY_CASE["pg_only"][0]["id"] in ids
    # Without Redis the PostgreSQL row is all there is: a terminated one still becomes killed.
    assert DeliberationSession.objects.get(pk=BY_CASE["terminated"][0]["id"]).status == "killed"


def import_json_pg_only(source):
    code, out = run_import("--database-url", source.database_url, "--json")
    return code, json.loads(out)


def test_imported_sessions_get_their_hot_entry_written_through(source):
    import_json(source)

    item = BY_CASE["completed"][0]
    entry = SessionCache.get(item["id"])
    assert entry is not None
    assert entry["status"] == "completed"
    assert entry["event_count"] == item["events"]
    assert SessionEvent.objects.filter(session_id=item["id"]).count() == item["events"]


def test_redis_alone_imports_the_sessions_whose_user_it_can_name(source):
    code, out = run_import("--redis-url", source.redis_url, "--json")

    summary = json.loads(out)
    # Without PostgreSQL the only email Redis holds is in Alice's OAuth session.
    assert code == 2
    alice = {
        s["id"]
        for s in EXPECTED["sessions"]
        if s["user_email_lower"] == "alice@example.com" and s["case"] != "pg_only"
    }
    assert set(DeliberationSession.objects.values_list("id", flat=True)) == alice
    assert all("unknown user" in s["reason"] for s in summary["skipped"])
    assert summary["sessions"]["skipped"] == sum(
        1 for s in EXPECTED["sessions"] if s["user_email_lower"] != "alice@example.com"
    )


def test_times_postgres_never_filled_come_from_redis_epochs_as_aware_datetimes(source):
    item = BY_CASE["completed"][0]
    meta = json.loads(source.redis.get(f"metadata:{item['id']}"))
    with source.pg() as conn, conn.cursor() as cur:
        cur.execute("SELECT completed_at FROM sessions WHERE id = %s", [item["id"]])
        assert cur.fetchone()[0] is None

    import_json(source)

    session = DeliberationSession.objects.get(pk=item["id"])
    assert session.completed_at == datetime.fromtimestamp(float(meta["completed_at"]), tz=UTC)
    assert session.started_at == datetime.fromtimestamp(float(meta["started_at"]), tz=UTC)
    assert session.created_at.tzinfo is not None
