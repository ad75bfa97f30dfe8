"""GET /api/v1/me/export (a streamed ZIP of everything) and DELETE /api/v1/me."""

import io
import json
import secrets
import tracemalloc
import zipfile

import psutil
import pytest
import redis
import requests
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from sessions_app.accounts import account_export_chunks, account_purge
from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionCount, SessionEvent, Status
from tests.conftest import token_client
from tests.factories import SessionFactory
from tests.processes import start_web


def with_events(session: DeliberationSession, count: int, size: int = 40) -> DeliberationSession:
    SessionEvent.objects.bulk_create(
        SessionEvent(
            session=session,
            sequence=n,
            event_type="contribution",
            data={"round": 1, "content": f"point {n} " + "x" * size},
        )
        for n in range(1, count + 1)
    )
    DeliberationSession.objects.filter(pk=session.pk).update(last_sequence=count)
    return session


def many_sessions(user, count: int, events: int, size: int) -> None:
    sessions = DeliberationSession.objects.bulk_create(
        DeliberationSession(
            user=user,
            problem_statement=f"Decision number {n}: should we hire a CFO?",
            status=Status.COMPLETED,
            last_sequence=events,
        )
        for n in range(count)
    )
    SessionEvent.objects.bulk_create(
        (
            SessionEvent(
                session=s,
                sequence=n,
                event_type="contribution",
                # Random hex: it compresses to about half, so neither the content nor the
                # compressed archive would fit the tests' bounds if either were held whole.
                data={"content": secrets.token_hex(size // 2)},
            )
            for s in sessions
            for n in range(1, events + 1)
        ),
        batch_size=5000,
    )


def unzip(content: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    return archive


def test_the_export_holds_an_index_and_each_session_with_its_whole_transcript(
    api, user, other_user
):
    first = with_events(SessionFactory(user=user, problem_statement="Should we hire a CFO?"), 3)
    second = with_events(SessionFactory(user=user, status=Status.DELETED), 1200)
    SessionFactory(user=other_user)

    response = api.get("/api/v1/me/export")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="bo1-export-alice-')
    archive = unzip(b"".join(response.streaming_content))
    assert sorted(archive.namelist()) == sorted(
        ["index.json", f"sessions/{first.id}.json", f"sessions/{second.id}.json"]
    )
    index = json.loads(archive.read("index.json"))
    assert index["user"] == "alice"
    assert [s["id"] for s in index["sessions"]] == [first.id, second.id]
    assert index["sessions"][0]["file"] == f"sessions/{first.id}.json"
    assert index["sessions"][0]["problem_statement"] == "Should we hire a CFO?"
    document = json.loads(archive.read(f"sessions/{second.id}.json"))
    assert document["session"]["id"] == second.id
    assert document["session"]["status"] == "deleted"
    assert "user_id" not in document["session"]
    # More than one page of events (session_events_all reads 1,000 at a time), all in order.
    assert [e["sequence"] for e in document["events"]] == list(range(1, 1201))
    assert document["events"][0]["data"]["content"].startswith("point 1 ")


def test_an_export_without_sessions_is_a_zip_with_an_empty_index(api):
    archive = unzip(b"".join(api.get("/api/v1/me/export").streaming_content))
    assert archive.namelist() == ["index.json"]
    assert json.loads(archive.read("index.json"))["sessions"] == []


def test_the_export_needs_credentials(anon):
    assert anon.get("/api/v1/me/export").status_code == 401


def test_exporting_2000_sessions_takes_flat_memory(user):
    many_sessions(user, 2000, events=2, size=5000)  # about 20 MB of JSON
    tracemalloc.start()
    try:
        written = 0
        baseline = tracemalloc.get_traced_memory()[0]
        for chunk in account_export_chunks(user=user):
            written += len(chunk)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    # The central directory (one ZipInfo per file) is all that grows: well under 4 MB, where
    # holding the archive's content would take 20 MB.
    assert peak < 4 * 1024 * 1024, peak
    assert written > 8 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_server_streams_a_large_export_without_growing(user):
    many_sessions(user, 2000, events=3, size=9000)  # about 60 MB of JSON
    token = Token.objects.create(user=user)
    web, base = start_web()
    try:
        worker = psutil.Process(web.pid).children()[0]
        headers = {"Authorization": f"Token {token.key}"}
        assert requests.get(f"{base}/api/v1/sessions", headers=headers, timeout=30).ok
        before = worker.memory_info().rss
        peak = before
        received = bytearray()
        with requests.get(
            f"{base}/api/v1/me/export", headers=headers, stream=True, timeout=120
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(64 * 1024):
                received += chunk
                peak = max(peak, worker.memory_info().rss)
    finally:
        web.stop()
    archive = unzip(bytes(received))
    assert len(archive.namelist()) == 2001
    content = sum(info.file_size for info in archive.infolist())
    assert content > 50 * 1024 * 1024
    # A server that built the archive (or its content) in memory would grow by over 50 MB.
    assert peak - before < 25 * 1024 * 1024, (before, peak)


def redis_keys(session_id):
    return SessionCache.keys_for(session_id)


def test_deleting_the_account_needs_the_username_and_a_wrong_one_deletes_nothing(api, user):
    session = with_events(SessionFactory(user=user), 2)
    for body in ({}, {"confirm": "ALICE"}, {"confirm": "alice "}, {"confirm": ""}):
        response = api.delete("/api/v1/me", body, format="json")
        assert response.status_code == 400, body
        assert "confirm" in response.json()
    assert User.objects.get(pk=user.pk).is_active
    assert DeliberationSession.objects.filter(pk=session.pk).exists()
    assert api.get("/api/v1/sessions").status_code == 200


def test_deleting_the_account_removes_sessions_events_tokens_and_redis_keys(
    api, user, other_user, django_capture_on_commit_callbacks
):
    sessions = [with_events(SessionFactory(user=user, status=Status.COMPLETED), 3) for _ in "ab"]
    running = SessionFactory(user=user, status=Status.RUNNING)
    for session in [*sessions, running]:
        SessionCache.set(session.id, {"id": session.id})
        SessionCache.append_events(session.id, [{"sequence": 1, "event_type": "x"}])
    theirs = SessionFactory(user=other_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/v1/me", {"confirm": "alice"}, format="json")

    assert response.status_code == 202
    assert response.json() == {"detail": "Account alice is being deleted.", "sessions": 3}
    # At once: the old token no longer works, and the running deliberation was killed.
    assert api.get("/api/v1/sessions").status_code == 401
    assert not Token.objects.filter(user_id=user.pk).exists()
    assert SessionEvent.objects.filter(session=running, event_type="killed").exists()

    account_purge(user_id=user.pk)  # what the queued task runs in the worker

    assert not User.objects.filter(pk=user.pk).exists()
    assert not DeliberationSession.objects.filter(user_id=user.pk).exists()
    assert not SessionEvent.objects.filter(session_id__in=[s.id for s in sessions]).exists()
    assert not SessionCount.objects.filter(user_id=user.pk).exists()
    for session in [*sessions, running]:
        assert redis_keys(session.id) == []
    assert DeliberationSession.objects.filter(pk=theirs.pk).exists()
    # A repeat is harmless: the token is gone (401), and the purge finds nothing to do.
    assert api.delete("/api/v1/me", {"confirm": "alice"}, format="json").status_code == 401
    assert account_purge(user_id=user.pk).sessions == 0


def test_deleting_the_account_queues_the_purge_for_the_worker_once_committed(
    api, user, settings, django_capture_on_commit_callbacks
):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    SessionFactory(user=user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.delete("/api/v1/me", {"confirm": "alice"}, format="json")
    assert response.status_code == 202
    assert broker.llen("celery") == 0  # nothing is queued before the commit
    for callback in callbacks:
        callback()
    queued = [json.loads(raw)["headers"] for raw in broker.lrange("celery", 0, -1)]
    assert [(h["task"], h["argsrepr"]) for h in queued] == [
        ("sessions_app.purge_account", f"[{user.pk}]")
    ]


def test_sessions_under_legal_hold_outlive_the_account_deletion(api, user):
    held = SessionFactory(user=user, legal_hold=True)
    free = SessionFactory(user=user)
    assert api.delete("/api/v1/me", {"confirm": "alice"}, format="json").status_code == 202
    report = account_purge(user_id=user.pk)  # what the queued task runs in the worker
    assert (report.sessions, report.held) == (1, 1)
    assert not DeliberationSession.objects.filter(pk=free.pk).exists()
    assert DeliberationSession.objects.filter(pk=held.pk).exists()
    closed = User.objects.get(pk=user.pk)
    assert not closed.is_active
    assert not closed.has_usable_password()
    assert token_client(closed).get("/api/v1/sessions").status_code == 401


def test_both_calls_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    export = schema["paths"]["/api/v1/me/export"]["get"]
    assert "application/zip" in export["responses"]["200"]["content"]
    delete = schema["paths"]["/api/v1/me"]["delete"]
    assert set(delete["responses"]) >= {"202", "400", "401", "503"}
    body = delete["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert "confirm" in schema["components"]["schemas"][body.rsplit("/", 1)[-1]]["required"]
