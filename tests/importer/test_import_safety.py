"""import_bo1 is safe to rerun and to stop: reruns change nothing, a dry run writes nothing,
broken records are skipped with a reason, an interrupted run leaves only whole sessions."""

import fcntl
import json
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import datetime
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django_redis import get_redis_connection

from importer import services as import_services
from importer.models import DeletedHere, ImportedSession, SessionVote
from sessions_app.accounts import account_close, account_purge
from sessions_app.models import DeliberationSession, SessionEvent
from sessions_app.retention import PurgeReport, sessions_delete_for_good
from sessions_app.services import session_soft_delete
from tests.importer.conftest import ROOT, expected, import_json, run_import
from tests.processes import stack_env

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = expected()
ALL = len(EXPECTED["sessions"])
BY_CASE = {}
for item in EXPECTED["sessions"]:
    BY_CASE.setdefault(item["case"], []).append(item)


def store_state():
    """Everything an import writes here, to compare runs."""
    return (
        list(DeliberationSession.objects.order_by("id").values()),
        list(SessionEvent.objects.order_by("session_id", "sequence").values()),
        list(SessionVote.objects.order_by("id").values()),
        list(ImportedSession.objects.order_by("session_id").values()),
        list(User.objects.order_by("id").values("id", "username", "email", "password")),
    )


def test_a_second_run_adds_and_changes_nothing(source):
    first_code, first = import_json(source)
    before = store_state()

    code, second = import_json(source)

    assert first_code == code == 0
    assert first["sessions"]["imported"] == ALL
    assert second["sessions"] == {
        "imported": 0,
        "updated": 0,
        "unchanged": ALL,
        "deleted_here": 0,
        "skipped": 0,
    }
    assert second["events_imported"] == 0
    assert second["users"] == {"matched": 3, "created": 0}
    assert store_state() == before


def test_a_newer_source_updates_the_session_and_appends_only_new_events(source):
    (item,) = BY_CASE["redis_newer_than_pg"]
    import_json(source)
    key = f"metadata:{item['id']}"
    meta = json.loads(source.redis.get(key))
    meta.update(status="killed", killed_at="1796154460.5", kill_reason="Decided elsewhere")
    source.redis.set(key, json.dumps(meta))
    source.redis.rpush(
        f"events_history:{item['id']}",
        json.dumps(
            {
                "event_type": "killed_by_user",
                "session_id": item["id"],
                "sequence": 8,
                "timestamp": "2026-12-01T19:47:40.500000+00:00",
                "data": {"reason": "Decided elsewhere"},
            }
        ),
    )

    code, summary = import_json(source)

    assert code == 0
    assert summary["sessions"]["updated"] == 1
    assert summary["sessions"]["unchanged"] == ALL - 1
    assert summary["events_imported"] == 1
    session = DeliberationSession.objects.get(pk=item["id"])
    assert session.status == "killed" and session.error["message"] == "Decided elsewhere"
    events = list(session.events.order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, item["events"] + 2))
    assert events[-1].event_type == "killed_by_user"
    assert session.last_sequence == item["events"] + 1


def test_a_rerun_keeps_what_users_did_here_while_the_source_is_unchanged(source):
    item = BY_CASE["completed"][0]
    import_json(source)
    session_soft_delete(session_id=item["id"])

    code, summary = import_json(source)

    assert code == 0 and summary["sessions"]["unchanged"] == ALL
    assert DeliberationSession.objects.get(pk=item["id"]).status == "deleted"


def test_a_session_its_user_deleted_stays_deleted_when_its_source_changes(source):
    (item,) = BY_CASE["redis_newer_than_pg"]
    import_json(source)
    session_soft_delete(session_id=item["id"])
    deleted_at = DeliberationSession.objects.get(pk=item["id"]).updated_at
    key = f"metadata:{item['id']}"
    meta = json.loads(source.redis.get(key))
    meta.update(phase="synthesis", total_cost="0.9")
    source.redis.set(key, json.dumps(meta))

    code, summary = import_json(source)

    assert code == 0 and summary["sessions"]["updated"] == 1
    session = DeliberationSession.objects.get(pk=item["id"])
    assert session.status == "deleted"
    assert session.updated_at == deleted_at  # retention counts from the deletion here
    assert session.phase == "synthesis"


def test_a_run_given_one_store_leaves_sessions_imported_from_both_as_they_were(source):
    """Redis alone names no email of most users and PostgreSQL alone misses the live fields:
    either run sees half of a session that came from both, so it only adds new events."""
    import_json(source)
    before = store_state()

    by_redis, redis_summary = import_json_from("--redis-url", source.redis_url)
    by_postgres, postgres_summary = import_json_from("--database-url", source.database_url)

    assert by_redis == by_postgres == 0, (redis_summary, postgres_summary)
    for summary in (redis_summary, postgres_summary):
        assert summary["sessions"]["updated"] == summary["sessions"]["skipped"] == 0
        assert summary["users"]["created"] == 0
        assert summary["sessions"]["imported"] == 0 and summary["sessions"]["unchanged"] > 0
    assert store_state() == before


def test_a_rerun_after_the_old_redis_keys_expired_keeps_what_they_said(source):
    """The original's keys live 24 hours: a later rerun finds only the row of a session whose
    live fields came from Redis, and must not fall back to it."""
    import_json(source)
    before = store_state()
    for key in source.redis.scan_iter(match="metadata:*"):
        source.redis.delete(key)

    code, summary = import_json(source)

    assert code == 0, summary
    assert summary["sessions"]["updated"] == 0
    assert store_state() == before


def test_sessions_deleted_here_for_good_are_not_imported_again(source):
    """A user's account deletion (or retention) is not undone by a rerun of the import."""
    import_json(source)
    bob = User.objects.get(email__iexact="bob@example.com")
    bobs = set(DeliberationSession.objects.filter(user=bob).values_list("id", flat=True))
    (kept,) = BY_CASE["pg_only"]
    account_close(user=bob)
    account_purge(user_id=bob.pk)
    sessions_delete_for_good([kept["id"]], report=PurgeReport(), pause=0)
    assert not User.objects.filter(email__iexact="bob@example.com").exists()

    for extra in (("--dry-run",), ()):
        code, summary = import_json(source, *extra)

        assert code == 0, summary
        assert summary["sessions"]["deleted_here"] == len(bobs | {kept["id"]})
        assert summary["sessions"]["imported"] == 0
        assert summary["users"]["created"] == 0
    assert not User.objects.filter(email__iexact="bob@example.com").exists()
    assert not DeliberationSession.objects.filter(pk__in=bobs | {kept["id"]}).exists()


def test_only_a_session_deleted_is_remembered_not_its_import_record_alone(source):
    import_json(source)
    first, second = (item["id"] for item in BY_CASE["completed"][:2])

    ImportedSession.objects.filter(session_id=first).delete()
    DeliberationSession.objects.filter(pk=second).delete()

    assert list(DeletedHere.objects.values_list("session_id", flat=True)) == [second]


def import_json_from(*urls: str) -> tuple[int, dict]:
    code, out = run_import(*urls, "--json")
    return code, json.loads(out)


def test_a_dry_run_writes_nothing_anywhere_and_reports_the_same_summary(source):
    before_source = source.snapshot()
    cache = get_redis_connection("default")

    code, dry = import_json(source, "--dry-run")

    assert code == 0
    assert dry["dry_run"] is True
    assert DeliberationSession.objects.count() == 0
    assert SessionEvent.objects.count() == 0
    assert User.objects.count() == 0
    assert ImportedSession.objects.count() == 0
    assert cache.dbsize() == 0
    assert source.snapshot() == before_source

    code, real = import_json(source)
    assert code == 0
    assert {k: v for k, v in real.items() if k != "dry_run"} == {
        k: v for k, v in dry.items() if k != "dry_run"
    }


def test_the_import_never_writes_to_the_original_stores(source):
    before = source.snapshot()

    import_json(source)

    assert source.snapshot() == before


def test_broken_records_are_skipped_with_a_reason_and_the_run_exits_2(broken_source, caplog):
    caplog.set_level(logging.WARNING, logger="importer")

    code, summary = import_json(broken_source)

    assert code == 2
    assert summary["sessions"]["imported"] == ALL
    assert summary["sessions"]["skipped"] == len(EXPECTED["skipped"])
    reasons = {s["session_id"]: s["reason"] for s in summary["skipped"]}
    for item in EXPECTED["skipped"]:
        assert any(word in reasons[item["id"]] for word in item["reason_contains"]), reasons
        assert not DeliberationSession.objects.filter(pk=item["id"]).exists()
        assert any(item["id"] in r.getMessage() for r in caplog.records)
    assert DeliberationSession.objects.count() == ALL


def test_a_value_of_the_wrong_type_skips_that_session_whole(source):
    wrong_key = BY_CASE["completed"][0]["id"]
    wrong_field = BY_CASE["completed"][1]["id"]
    source.redis.delete(f"events_history:{wrong_key}")
    source.redis.set(f"events_history:{wrong_key}", "not a list")
    meta = json.loads(source.redis.get(f"metadata:{wrong_field}"))
    meta["problem_context"] = "a string, not an object"
    with source.pg() as conn, conn.cursor() as cur:  # PostgreSQL has it right: Redis' value wins
        cur.execute("UPDATE sessions SET problem_context = NULL WHERE id = %s", [wrong_field])
    source.redis.set(f"metadata:{wrong_field}", json.dumps(meta))

    code, summary = import_json(source)

    assert code == 2
    reasons = {s["session_id"]: s["reason"] for s in summary["skipped"]}
    assert "events_history" in reasons[wrong_key] and "WRONGTYPE" in reasons[wrong_key]
    assert "problem_context" in reasons[wrong_field]
    for sid in (wrong_key, wrong_field):
        assert not DeliberationSession.objects.filter(pk=sid).exists()
        assert not SessionEvent.objects.filter(session_id=sid).exists()
    assert summary["sessions"]["imported"] == ALL - 2


def test_an_interrupted_run_leaves_only_whole_sessions_and_a_rerun_finishes(source):
    real_votes = import_services._votes
    calls = {"n": 0}

    def votes_then_ctrl_c(merged, session):
        calls["n"] += 1
        if calls["n"] == 6:  # inside the sixth session's transaction, after its events
            raise KeyboardInterrupt
        return real_votes(merged, session)

    with mock.patch.object(import_services, "_votes", side_effect=votes_then_ctrl_c):
        code, summary = import_json(source)

    assert code == 130
    assert summary["interrupted"] is True
    assert summary["sessions"]["imported"] == 5
    by_id = {s["id"]: s for s in EXPECTED["sessions"]}
    written = list(DeliberationSession.objects.all())
    assert len(written) == 5
    for session in written:
        want = by_id[session.id]
        assert session.events.count() == want["events"] == session.last_sequence
        assert SessionVote.objects.filter(session=session).count() == want["votes"]
        assert ImportedSession.objects.filter(session=session).exists()

    code, rest = import_json(source)
    assert code == 0
    assert rest["sessions"]["imported"] == ALL - 5 and rest["sessions"]["unchanged"] == 5
    assert SessionEvent.objects.count() == sum(s["events"] for s in EXPECTED["sessions"])


def test_a_store_that_cannot_be_reached_is_fatal_with_the_reason(source):
    code, out = run_import(
        "--database-url", source.database_url, "--redis-url", "redis://127.0.0.1:1/0", "--json"
    )
    assert code == 1
    assert "Redis" in json.loads(out)["error"]

    code, out = run_import("--database-url", "postgres://postgres@127.0.0.1:5432/no_such_db_bo1")
    assert code == 1
    assert DeliberationSession.objects.count() == 0


def test_since_imports_only_sessions_updated_from_then_in_either_store(source):
    since = datetime.fromisoformat("2026-12-01T19:47:37.5+00:00")
    newest = {}
    with source.pg() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, updated_at FROM sessions")
        newest.update(cur.fetchall())
    for key in source.redis.scan_iter(match="metadata:bo1_*"):
        meta = json.loads(source.redis.get(key))
        sid, at = key.removeprefix("metadata:"), datetime.fromisoformat(meta["updated_at"])
        newest[sid] = max(newest.get(sid, at), at)
    want = {sid for sid, at in newest.items() if at >= since}
    assert 0 < len(want) < ALL

    code, summary = import_json(source, "--since", since.isoformat())

    assert code == 0
    assert set(DeliberationSession.objects.values_list("id", flat=True)) == want
    assert summary["sessions"]["imported"] == len(want)


def test_the_command_line_draws_a_progress_bar_on_a_terminal_and_prints_a_summary(source):
    argv = [sys.executable, "manage.py", "import_bo1", "--database-url", source.database_url]
    argv += ["--redis-url", source.redis_url]
    leader, follower = pty.openpty()
    # A terminal of 120 columns (a fresh pty has none, and tqdm draws to its width).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        done = subprocess.run(
            argv, cwd=ROOT, env=stack_env(), stdout=subprocess.PIPE, stderr=follower, timeout=120
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert b"Importing" in drawn and f"{ALL}/{ALL}".encode() in drawn
    out = done.stdout.decode()
    assert f"Sessions: {ALL} imported, 0 updated, 0 unchanged, 0 skipped" in out
    assert "Users: 0 matched, 3 created" in out

    piped = subprocess.run(
        [*argv, "--json"], cwd=ROOT, env=stack_env(), capture_output=True, timeout=120
    )
    assert piped.returncode == 0
    assert b"Importing" not in piped.stderr  # no bar when stderr is not a terminal
    assert json.loads(piped.stdout)["sessions"]["unchanged"] == ALL
