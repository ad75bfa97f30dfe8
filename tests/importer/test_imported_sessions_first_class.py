"""Imported sessions are first-class: list, detail, events, stream, export, dashboard, admin."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from deliberation.transcript import build_transcript
from tests.api.test_stream import AsgiStream, run
from tests.conftest import token_client
from tests.importer.conftest import expected, import_json

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = expected()
BY_CASE = {}
for item in EXPECTED["sessions"]:
    BY_CASE.setdefault(item["case"], []).append(item)


@pytest.fixture
def imported(source):
    code, _ = import_json(source)
    assert code == 0
    return source


def _owner(item):
    return User.objects.get(email__iexact=item["user_email_lower"])


def test_the_list_shows_each_users_imported_sessions_and_hides_deleted_ones(imported):
    for email in {s["user_email_lower"] for s in EXPECTED["sessions"]}:
        user = User.objects.get(email__iexact=email)
        page = token_client(user).get("/api/v1/sessions?limit=100").json()
        listed = {s["id"] for s in page["sessions"]}
        want = {
            s["id"] for s in EXPECTED["sessions"] if s["user_email_lower"] == email and s["in_list"]
        }
        assert listed == want
        assert page["total"] == len(want)


def test_detail_events_and_export_of_an_imported_session(imported):
    item = BY_CASE["completed"][0]
    api = token_client(_owner(item))
    detail = api.get(f"/api/v1/sessions/{item['id']}").json()
    assert detail["status"] == "completed"
    assert detail["synthesis"] == item["synthesis_text"]
    events = api.get(f"/api/v1/sessions/{item['id']}/events").json()
    assert events["count"] == item["events"]
    assert [e["sequence"] for e in events["events"]] == list(range(1, item["events"] + 1))

    markdown = api.get(f"/api/v1/sessions/{item['id']}/export?format=md").content.decode()
    assert item["problem_statement"] in markdown
    assert "Tom Okafor" in markdown or "Luis Ortega" in markdown  # the board, from `personas`
    assert "No personas were selected." not in markdown
    exported = json.loads(api.get(f"/api/v1/sessions/{item['id']}/export?format=json").content)
    assert len(exported["events"]) == item["events"]


def test_another_users_imported_session_is_404(imported):
    alice_item = next(
        s for s in EXPECTED["sessions"] if s["user_email_lower"] == "alice@example.com"
    )
    bob = User.objects.get(email__iexact="bob@example.com")
    assert token_client(bob).get(f"/api/v1/sessions/{alice_item['id']}").status_code == 404


def test_unknown_event_types_are_shown_plainly_by_transcript_export_and_dashboard(imported):
    (item,) = BY_CASE["paused_clarification"]
    user = _owner(item)
    api = token_client(user)

    markdown = api.get(f"/api/v1/sessions/{item['id']}/export?format=md")
    assert markdown.status_code == 200
    text = markdown.content.decode()
    assert "## Other events" in text
    assert "`clarification_required`" in text and "What is the maximum budget?" in text

    events = api.get(f"/api/v1/sessions/{item['id']}/events").json()["events"]
    transcript = build_transcript({}, events)
    assert [o.event_type for o in transcript.other_events] == [
        "subproblem_started",
        "clarification_required",
    ]

    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/sessions/{item['id']}")
    assert page.status_code == 200
    assert "clarification_required" in page.content.decode()
    assert browser.get("/").status_code == 200


def test_stream_replay_of_an_imported_session_sends_every_event_and_ends(imported):
    item = BY_CASE["killed"][0]  # no terminal event among its events: the status ends it
    token, _ = Token.objects.get_or_create(user=_owner(item))

    async def scenario():
        stream = await AsgiStream(
            f"/api/v1/sessions/{item['id']}/stream", {"Authorization": f"Token {token.key}"}
        ).start()
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert stream.status == 200
    assert stream.reader.sequences() == list(range(1, item["events"] + 1))
    assert [f.event for f in stream.reader.events] == item["event_types"]


def test_the_admin_lists_and_opens_imported_sessions_and_their_votes(imported):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-123456789")
    browser = Client()
    browser.force_login(admin)
    item = BY_CASE["completed"][0]
    assert browser.get("/admin/sessions_app/deliberationsession/").status_code == 200
    page = browser.get(f"/admin/sessions_app/deliberationsession/{item['id']}/change/")
    assert page.status_code == 200
    votes = browser.get(f"/admin/importer/sessionvote/?q={item['id']}")
    assert votes.status_code == 200
    assert "Tom Okafor" in votes.content.decode()
    records = browser.get("/admin/importer/importedsession/")
    assert records.status_code == 200 and item["id"] in records.content.decode()
