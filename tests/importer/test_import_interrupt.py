"""Ctrl-C, a real SIGINT to the command's process, in the middle of a large import: only whole
sessions are left, the summary says what was written, and a rerun finishes the import."""

import json
import signal
import subprocess
import sys
import time

import psycopg2
import pytest
from django.db.models import Count

from importer.models import ImportedSession, SessionVote
from scripts.bench_import.generate import generate_postgres
from sessions_app.models import DeliberationSession, SessionEvent
from tests.processes import ROOT, stack_env

SESSIONS, EVENTS = 1500, 45_000


def source_counts(database_url: str, table: str) -> dict[str, int]:
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT session_id, count(*) FROM {table} GROUP BY session_id")
        counts = dict(cur.fetchall())
    conn.close()
    return counts


def start_import(database_url: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "manage.py", "import_bo1", "--database-url", database_url, "--json"]
    return subprocess.Popen(
        argv, cwd=ROOT, env=stack_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_ctrl_c_mid_import_leaves_only_whole_sessions_and_a_rerun_finishes(scratch_stores):
    database_url, _ = scratch_stores
    generate_postgres(database_url, sessions=SESSIONS, events=EVENTS, users=40)
    events_in_source = source_counts(database_url, "session_events")
    votes_in_source = source_counts(database_url, "recommendations")

    process = start_import(database_url)
    deadline = time.monotonic() + 120
    while DeliberationSession.objects.count() < 200:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the import did not get going"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    summary = json.loads(out)
    imported = summary["sessions"]["imported"]
    assert summary["interrupted"] is True and 200 <= imported < SESSIONS
    written = DeliberationSession.objects.in_bulk()
    assert len(written) == imported
    events_here = dict(
        SessionEvent.objects.values_list("session_id").annotate(n=Count("id")).order_by()
    )
    for session_id, session in written.items():
        assert events_here.get(session_id, 0) == session.last_sequence
        assert session.last_sequence == events_in_source.get(session_id, 0), session_id
        assert SessionVote.objects.filter(session=session).count() == votes_in_source.get(
            session_id, 0
        )
    assert ImportedSession.objects.count() == imported
    assert summary["events_imported"] == sum(events_here.values())

    rerun = start_import(database_url)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    rest = json.loads(out)["sessions"]
    assert (rest["imported"], rest["unchanged"]) == (SESSIONS - imported, imported)
    assert SessionEvent.objects.count() == sum(events_in_source.values())
