"""Export of a session as a Markdown transcript or as JSON."""

import json

import pytest

from sessions_app import services
from sessions_app.models import Status
from sessions_app.services import NewEvent
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(user):
    session = SessionFactory(
        user=user,
        status=Status.RUNNING,
        problem_statement="Should we move the team to a four-day week?",
        problem_context={"team_size": 12},
        personas=[
            {
                "persona_code": "finance_cfo",
                "persona_name": "Helena Marsh",
                "archetype": "Chief Financial Officer",
                "domain": "finance",
                "expertise": ["cash flow planning", "budgeting"],
                "sub_problem_index": 0,
            }
        ],
    )
    events = [
        NewEvent("session_started", {}),
        NewEvent(
            "persona_selected",
            {
                "persona_code": "finance_cfo",
                "persona_name": "Helena Marsh",
                "archetype": "Chief Financial Officer",
                "domain": "finance",
                "rationale": "Someone must watch the money.",
                "sub_problem_index": 0,
            },
        ),
        NewEvent(
            "contribution",
            {
                "round": 1,
                "persona_code": "finance_cfo",
                "persona_name": "Helena Marsh",
                "content": "Costs stay flat.\nOutput is the question.",
                "sub_problem_index": 0,
            },
        ),
        NewEvent(
            "contribution",
            {
                "round": 2,
                "persona_code": "finance_cfo",
                "persona_name": "Helena Marsh",
                "content": "Pilot it for a quarter.",
                "sub_problem_index": 0,
            },
        ),
        NewEvent(
            "persona_vote",
            {
                "persona_code": "finance_cfo",
                "persona_name": "Helena Marsh",
                "recommendation": "Run a pilot",
                "confidence": 0.8,
                "conditions": ["measure output", "review after 3 months"],
                "sub_problem_index": 0,
            },
        ),
        NewEvent("voting_complete", {"consensus_level": "strong", "sub_problem_index": 0}),
    ]
    services.session_record_progress(
        session_id=session.id, events=events, fields={"total_cost": "0.0125", "total_tokens": 4321}
    )
    services.session_transition(
        session_id=session.id,
        to=Status.COMPLETED,
        fields={"synthesis_text": "## Summary\nRun a pilot.", "final_recommendation": "Pilot."},
        events=[
            NewEvent(
                "complete",
                {
                    "synthesis": "## Summary\nRun a pilot.",
                    "final_recommendation": "Pilot.",
                    "total_cost": "0.0125",
                    "total_tokens": 4321,
                    "stop_reason": "consensus",
                },
            )
        ],
    )
    return session


def export_url(session, fmt=None):
    url = f"/api/v1/sessions/{session.id}/export"
    return f"{url}?format={fmt}" if fmt else url


def test_markdown_export_is_a_readable_transcript_download(api, finished):
    response = api.get(export_url(finished, "md"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == f'attachment; filename="{finished.id}.md"'
    text = response.content.decode()
    sections = ["## Problem", "## Board", "## Transcript", "## Votes", "## Synthesis", "## Costs"]
    positions = [text.index(section) for section in sections]
    assert positions == sorted(positions)
    assert "Should we move the team to a four-day week?" in text
    assert '"team_size": 12' in text
    assert "**Helena Marsh**, Chief Financial Officer, finance" in text
    assert "Expertise: cash flow planning, budgeting" in text
    assert "Someone must watch the money." in text
    assert text.index("### Round 1") < text.index("> Costs stay flat.") < text.index("### Round 2")
    assert "> Output is the question." in text
    assert "**Helena Marsh** (80% confident): Run a pilot" in text
    assert "Conditions: measure output; review after 3 months" in text
    assert "Consensus: **strong**" in text
    assert "## Summary\nRun a pilot." in text
    assert "Stopped because: consensus" in text
    assert "Total: $0.0125 (4321 tokens)" in text


def test_markdown_is_the_default_format(api, finished):
    response = api.get(export_url(finished))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")


def test_json_export_has_the_detail_and_every_event(api, finished):
    response = api.get(export_url(finished, "json"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == f'attachment; filename="{finished.id}.json"'
    body = json.loads(response.content)
    assert body["session"]["id"] == finished.id
    assert body["session"]["status"] == "completed"
    assert body["session"]["synthesis"] == "## Summary\nRun a pilot."
    assert "user_id" not in body["session"]
    assert [e["sequence"] for e in body["events"]] == list(range(1, 8))
    assert body["events"][-1]["event_type"] == "complete"
    assert set(body["events"][0]) == {"sequence", "event_type", "data", "created_at"}


def test_an_unknown_format_is_400(api, finished):
    response = api.get(export_url(finished, "pdf"))
    assert response.status_code == 400
    assert "format" in response.json()


def test_another_users_session_is_404(other_api, finished):
    assert other_api.get(export_url(finished, "md")).status_code == 404
    assert other_api.get(export_url(finished, "json")).status_code == 404


def test_without_credentials_is_401(anon, finished):
    assert anon.get(export_url(finished, "md")).status_code == 401


def test_a_session_without_events_exports(api, user):
    session = SessionFactory(user=user)
    text = api.get(export_url(session, "md")).content.decode()
    assert "No contributions yet." in text and "No votes were cast." in text


def test_the_schema_documents_the_export(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/sessions/{session_id}/export"]["get"]
    assert {"text/markdown", "application/json"} <= set(operation["responses"]["200"]["content"])
    assert {"400", "401", "404"} <= set(operation["responses"])


def test_the_markdown_is_rendered_by_the_transcript_template(api, finished):
    response = api.get(export_url(finished, "md"))
    assert "deliberation/transcript.md" in [t.name for t in response.templates]
    # Autoescaping is off: Markdown is not HTML, quotes and ampersands stay as written.
    assert "&quot;" not in response.content.decode()


def test_the_store_holds_no_reading_of_deliberation_events():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "sessions_app"
    assert not (root / "transcript.py").exists()
    assert not (root / "api" / "export.py").exists()
