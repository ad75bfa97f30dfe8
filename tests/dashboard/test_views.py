"""Dashboard pages: login, the session list, the create form and the session page."""

import re
from unittest import mock

import pytest
from django.test import Client

from deliberation.services import BrokerUnavailable
from sessions_app import services
from sessions_app.models import DeliberationSession, Status
from sessions_app.services import NewEvent
from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def card_ids(response) -> list[str]:
    return re.findall(r'data-session-id="([^"]+)"', response.content.decode())


# -- login --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/sessions/new",
        "/sessions/bo1_00000000-0000-4000-8000-000000000000",
        "/sessions/bo1_00000000-0000-4000-8000-000000000000/synthesis",
        "/account",
    ],
)
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_the_login_form_logs_in_with_username_and_password(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert '<label for="id_username">' in html
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "secret-pass-123", "next": "/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_password_shows_an_error(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_logout_is_a_post(browser):
    assert browser.get("/accounts/logout/").status_code == 405
    response = browser.post("/accounts/logout/")
    assert response.status_code == 302
    assert browser.get("/").status_code == 302


# -- the list -----------------------------------------------------------------------------------


def test_the_list_shows_only_the_users_own_sessions_newest_first(browser, user, other_user):
    mine = [SessionFactory(user=user) for _ in range(3)]
    SessionFactory(user=other_user, problem_statement="Mallory's secret plan for the company")
    SessionFactory(user=user, status=Status.DELETED)
    response = browser.get("/")
    assert response.status_code == 200
    assert card_ids(response) == [s.id for s in reversed(mine)]
    assert "secret plan" not in response.content.decode()


def test_the_list_shows_status_phase_round_cost_and_progress(browser, user):
    SessionFactory(
        user=user, status=Status.RUNNING, phase="discussion", round_number=2, total_cost="0.0421"
    )
    SessionFactory(user=user, status=Status.COMPLETED, phase="complete", round_number=3)
    html = browser.get("/").content.decode()
    assert 'class="badge badge--running"' in html and 'class="badge badge--completed"' in html
    assert "Discussion" in html and "$0.0421" in html
    # Only the running one has a live progress bar, and the page script polls it.
    assert html.count("<progress") == 1 and 'data-live="true"' in html
    assert "dashboard/sessions.js" in html


def test_the_status_filter(browser, user):
    running = SessionFactory(user=user, status=Status.RUNNING)
    SessionFactory(user=user, status=Status.COMPLETED)
    response = browser.get("/", {"status": "running"})
    assert card_ids(response) == [running.id]
    assert '<option value="running" selected>' in response.content.decode()
    # An unknown status is no filter rather than an error.
    assert len(card_ids(browser.get("/", {"status": "bogus"}))) == 2


def test_the_search_box_is_full_text_search_with_stemming_and_snippets(browser, user, other_user):
    hiring = SessionFactory(user=user, problem_statement="Should we HIRE a second designer now?")
    SessionFactory(user=user, problem_statement="Should we move to a bigger office?")
    SessionFactory(user=other_user, problem_statement="Should we hire a lawyer?")
    response = browser.get("/", {"q": "hiring"})
    assert card_ids(response) == [hiring.id]
    html = response.content.decode()
    assert "1 session matches." in html
    assert '<p class="session-card__snippet">Should we <mark>HIRE</mark>' in html
    assert card_ids(browser.get("/", {"q": "nothing like this"})) == []


def test_a_search_of_only_stop_words_says_so(browser, user):
    SessionFactory(user=user)
    response = browser.get("/", {"q": "the of and"})
    assert response.status_code == 200
    assert "only stop words or punctuation" in response.content.decode()
    assert card_ids(response) == []


def test_pagination_keeps_the_filters(browser, user):
    sessions = [SessionFactory(user=user, status=Status.COMPLETED) for _ in range(45)]
    SessionFactory(user=user, status=Status.RUNNING)
    first = browser.get("/", {"status": "completed"})
    newest_first = [s.id for s in reversed(sessions)]
    assert card_ids(first) == newest_first[:20]
    html = first.content.decode()
    assert "Page 1 of 3" in html
    assert 'href="?status=completed&amp;page=2"' in html
    assert card_ids(browser.get("/", {"status": "completed", "page": "3"})) == newest_first[40:]
    # Nonsense page numbers fall back to the first page.
    assert card_ids(browser.get("/", {"status": "completed", "page": "x"})) == newest_first[:20]


# -- the create form ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("", "This field may not be blank."),
        ("   too short   ", "Ensure this field has at least 10 characters."),
        ("x" * 10_001, "Ensure this field has no more than 10000 characters."),
    ],
)
def test_the_create_form_applies_the_api_rules(browser, statement, message):
    response = browser.post("/sessions/new", {"problem_statement": statement})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'aria-invalid="true"' in html
    assert DeliberationSession.objects.count() == 0


def test_the_create_form_rejects_broken_json_context_and_bad_rounds(browser):
    response = browser.post(
        "/sessions/new",
        {
            "problem_statement": "Should we open a second office in Lisbon?",
            "problem_context": '{"budget": 10,}',
            "max_rounds": "11",
        },
    )
    html = response.content.decode()
    assert "looks like JSON but does not parse" in html
    assert "less than or equal to 10" in html
    assert DeliberationSession.objects.count() == 0


def test_the_create_form_creates_starts_and_opens_the_session(browser, user):
    with mock.patch("dashboard.views.deliberation_start") as start:
        response = browser.post(
            "/sessions/new",
            {
                "problem_statement": "   Should we open a second office in Lisbon?   ",
                "problem_context": "We have 40 staff.",
                "max_rounds": "3",
                "idempotency_key": "dashboard:abc",
            },
        )
    session = DeliberationSession.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/sessions/{session.id}"
    assert session.user == user
    assert session.problem_statement == "Should we open a second office in Lisbon?"
    assert session.problem_context == {"notes": "We have 40 staff."}
    assert session.max_rounds == 3
    start.assert_called_once_with(session_id=session.id)


def test_a_resubmitted_form_does_not_create_a_second_session(browser):
    data = {"problem_statement": "Should we open a second office?", "idempotency_key": "k1"}
    with mock.patch("dashboard.views.deliberation_start") as start:
        first = browser.post("/sessions/new", data)
        start.side_effect = lambda session_id: None
        services.session_transition(
            session_id=DeliberationSession.objects.get().id, to=Status.QUEUED
        )
        second = browser.post("/sessions/new", data)
    assert first["Location"] == second["Location"]
    assert DeliberationSession.objects.count() == 1
    assert start.call_count == 1


def test_a_json_object_context_is_kept_as_is(browser):
    with mock.patch("dashboard.views.deliberation_start"):
        browser.post(
            "/sessions/new",
            {
                "problem_statement": "Should we open a second office?",
                "problem_context": '{"staff": 40}',
            },
        )
    assert DeliberationSession.objects.get().problem_context == {"staff": 40}


def test_when_the_queue_is_down_the_session_is_kept_and_the_page_says_so(browser):
    with mock.patch(
        "dashboard.views.deliberation_start", side_effect=BrokerUnavailable("ConnectionError")
    ):
        response = browser.post(
            "/sessions/new", {"problem_statement": "Should we open a second office?"}, follow=True
        )
    session = DeliberationSession.objects.get()
    assert session.status == Status.CREATED
    html = response.content.decode()
    assert "task queue is unavailable" in html
    assert response.request["PATH_INFO"] == f"/sessions/{session.id}"


def test_the_form_page_renders_with_labels(browser):
    html = browser.get("/sessions/new").content.decode()
    assert '<textarea name="problem_statement"' in html
    assert '<label for="id_problem_statement">' in html
    assert '<label for="id_problem_context">' in html
    assert 'name="idempotency_key"' in html


# -- the session page ---------------------------------------------------------------------------


@pytest.fixture
def completed(user):
    session = SessionFactory(
        user=user,
        status=Status.RUNNING,
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
    synthesis = (
        "## Executive summary\n\nRun a **pilot**.\n\n"
        "<script>window.pwned = 1</script>\n\n"
        '<a href="javascript:alert(1)" onclick="steal()">click</a>\n\n'
        '<img src="x" onerror="steal()">'
    )
    services.session_record_progress(
        session_id=session.id,
        events=[
            NewEvent(
                "contribution",
                {
                    "round": 1,
                    "persona_code": "finance_cfo",
                    "persona_name": "Helena Marsh",
                    "content": (
                        "Cash **first**.<script>window.pwned = 2</script>"
                        "<img src=x onerror=steal()>"
                    ),
                    "sub_problem_index": 0,
                },
            ),
            NewEvent(
                "contribution",
                {
                    "round": 2,
                    "persona_code": "finance_cfo",
                    "persona_name": "Helena Marsh",
                    "content": "Then a pilot.",
                    "sub_problem_index": 0,
                },
            ),
            NewEvent(
                "persona_vote",
                {
                    "persona_code": "finance_cfo",
                    "persona_name": "Helena Marsh",
                    "recommendation": "Pilot for a quarter",
                    "confidence": 0.85,
                    "conditions": ["measure output"],
                    "sub_problem_index": 0,
                },
            ),
            NewEvent("voting_complete", {"consensus_level": "strong", "sub_problem_index": 0}),
        ],
        fields={"total_cost": "0.0123", "total_tokens": 999},
    )
    services.session_transition(
        session_id=session.id,
        to=Status.COMPLETED,
        fields={
            "synthesis_text": synthesis,
            "final_recommendation": "Pilot it.",
            "phase": "complete",
        },
        events=[NewEvent("complete", {"synthesis": synthesis, "total_cost": "0.0123"})],
    )
    return session


def test_the_session_page_shows_problem_board_rounds_votes_synthesis_costs(browser, completed):
    response = browser.get(f"/sessions/{completed.id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert completed.problem_statement in html
    assert "Helena Marsh" in html and "cash flow planning, budgeting" in html
    assert html.index('data-round-key="0:1"') < html.index('data-round-key="0:2"')
    assert "85% confident" in html and "Pilot for a quarter" in html
    assert "Consensus" in html and "<strong>strong</strong>" in html
    assert "<h4>Executive summary</h4>" in html and "<strong>pilot</strong>" in html
    assert "Pilot it." in html
    assert "$0.0123" in html and ">999<" in html
    assert 'class="badge badge--completed"' in html
    assert 'aria-live="polite"' in html
    assert f'href="/api/v1/sessions/{completed.id}/export?format=md"' in html
    assert f'href="/api/v1/sessions/{completed.id}/export?format=json"' in html


def test_the_synthesis_and_contributions_are_rendered_and_sanitised(browser, completed):
    html = browser.get(f"/sessions/{completed.id}").content.decode()
    synthesis = html[html.index('id="synthesis"') : html.index('id="costs-title"')]
    assert "<script>" not in synthesis and "window.pwned" not in synthesis
    assert "javascript:" not in synthesis and "onclick" not in synthesis
    assert "onerror" not in synthesis
    assert "Cash <strong>first</strong>." in html
    assert "window.pwned" not in html and "onerror" not in html
    # The only scripts on the page are ours: the state and the vocabulary as JSON, and the
    # static file.
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == [
        '<script id="session-state" type="application/json">',
        '<script id="vocabulary" type="application/json">',
        '<script src="/static/dashboard/session.js" defer>',
    ]


def test_the_synthesis_fragment_is_sanitised_html(browser, completed):
    response = browser.get(f"/sessions/{completed.id}/synthesis")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h4>Executive summary</h4>" in html
    assert "<script" not in html and "onerror" not in html
    assert "<html" not in html  # a fragment, not a page


def test_the_page_state_tells_the_script_where_to_resume(browser, user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    services.session_record_progress(session_id=session.id, events=[NewEvent("session_started")])
    html = browser.get(f"/sessions/{session.id}").content.decode()
    assert '"last_sequence": 1' in html
    assert f'"stream": "/api/v1/sessions/{session.id}/stream"' in html
    assert "Connecting to live updates" in html


def test_a_pending_clarification_shows_the_answer_form(browser, user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    services.session_transition(
        session_id=session.id,
        to=Status.PAUSED,
        pause_reason="clarification",
        fields={"clarification_question": "What is the budget?"},
    )
    html = browser.get(f"/sessions/{session.id}").content.decode()
    section = html[html.index('id="clarification"') : html.index('id="error-box"')]
    assert " hidden" not in section.split(">")[0]
    assert "What is the budget?" in section
    assert '<label for="clarification-answer">' in section


def test_another_users_session_page_is_404(browser, other_user):
    theirs = SessionFactory(user=other_user)
    assert browser.get(f"/sessions/{theirs.id}").status_code == 404
    assert browser.get(f"/sessions/{theirs.id}/synthesis").status_code == 404
    assert browser.get("/sessions/bo1_00000000-0000-4000-8000-000000000000").status_code == 404


def test_pages_render_for_a_user_without_sessions(user):
    client = Client()
    client.force_login(UserFactory(username="newcomer"))
    html = client.get("/").content.decode()
    assert "No sessions yet" in html


def test_the_create_form_shares_the_api_rate_limit(browser, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"session_create": "1/min", "session_start": "30/min"},
    }
    data = {"problem_statement": "Should we open a second office in Lisbon?"}
    with mock.patch("dashboard.views.deliberation_start"):
        assert browser.post("/sessions/new", data).status_code == 302
        refused = browser.post("/sessions/new", {**data, "idempotency_key": "another"})
    assert refused.status_code == 429
    assert "too quickly" in refused.content.decode()
    assert DeliberationSession.objects.count() == 1
