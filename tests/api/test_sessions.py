"""The sessions API: create, list, detail and delete, with validation, auth and isolation."""

import json

import pytest
from rest_framework.test import APIClient

from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/sessions"
STATEMENT = "Should we move our whole team to Lisbon next spring?"
DETAIL_KEYS = {
    "id", "problem_statement", "problem_context", "max_rounds", "status", "phase",
    "round_number", "pause_reason", "pending_clarification", "personas", "contributions",
    "event_count", "total_cost", "total_tokens", "costs_by_phase", "synthesis",
    "final_recommendation", "error", "created_at", "updated_at", "status_changed_at",
    "started_at", "completed_at", "last_activity_at",
}  # fmt: skip
LIST_KEYS = {"sessions", "total", "limit", "offset", "has_more", "next_offset", "next_cursor"}


def detail_url(session_id):
    return f"{SESSIONS}/{session_id}"


def post_json(client, body, **headers):
    return client.post(SESSIONS, data=json.dumps(body), content_type="application/json", **headers)


# --- create -------------------------------------------------------------------------------------


def test_create_answers_201_with_the_session_detail(api, user):
    response = post_json(
        api, {"problem_statement": f"  {STATEMENT}  ", "problem_context": {"team": 6}}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert body["id"].startswith("bo1_")
    assert body["problem_statement"] == STATEMENT  # trimmed
    assert (body["status"], body["phase"], body["round_number"]) == ("created", "intake", 0)
    assert (body["max_rounds"], body["problem_context"]) == (6, {"team": 6})
    assert body["total_cost"] == "0.000000"
    row = DeliberationSession.objects.get(pk=body["id"])
    assert row.user == user and row.problem_statement == STATEMENT


def test_create_writes_the_hot_entry_once_committed(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(api, {"problem_statement": STATEMENT, "max_rounds": 3})
    session_id = response.json()["id"]
    assert SessionCache.get(session_id)["max_rounds"] == 3


def test_create_then_detail_then_list_agree(api):
    created = post_json(api, {"problem_statement": STATEMENT}).json()
    detail = api.get(detail_url(created["id"])).json()
    assert detail == created
    listed = api.get(SESSIONS).json()["sessions"]
    assert [s["id"] for s in listed] == [created["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "problem_statement"),
        ({"problem_statement": "too short"}, "problem_statement"),
        ({"problem_statement": "   short    "}, "problem_statement"),
        ({"problem_statement": " " * 40}, "problem_statement"),
        ({"problem_statement": "x" * 10_001}, "problem_statement"),
        ({"problem_statement": 12345678901}, "problem_statement"),
        ({"problem_statement": ["Should we move to Lisbon?"]}, "problem_statement"),
        ({"problem_statement": None}, "problem_statement"),
        ({"problem_statement": "Should we move\x00 to Lisbon?"}, "problem_statement"),
        ({"problem_statement": STATEMENT, "problem_context": ["a", "b"]}, "problem_context"),
        ({"problem_statement": STATEMENT, "problem_context": "facts"}, "problem_context"),
        ({"problem_statement": STATEMENT, "problem_context": None}, "problem_context"),
        ({"problem_statement": STATEMENT, "problem_context": {"notes": "x" * 51_300}},
         "problem_context"),
        ({"problem_statement": STATEMENT, "problem_context": {"a": "nul\x00here"}},
         "problem_context"),
        ({"problem_statement": STATEMENT, "problem_context": {"nul\x00key": 1}},
         "problem_context"),
        ({"problem_statement": STATEMENT, "max_rounds": 0}, "max_rounds"),
        ({"problem_statement": STATEMENT, "max_rounds": 11}, "max_rounds"),
        ({"problem_statement": STATEMENT, "max_rounds": "abc"}, "max_rounds"),
        ({"problem_statement": STATEMENT, "max_rounds": None}, "max_rounds"),
    ],
)  # fmt: skip
def test_invalid_input_is_400_with_a_message_for_the_field_and_writes_nothing(
    api, user, body, field
):
    response = post_json(api, body)
    assert response.status_code == 400, response.content
    errors = response.json()
    assert list(errors) == [field]
    assert errors[field] and all(isinstance(m, str) and m for m in errors[field])
    assert not DeliberationSession.objects.filter(user=user).exists()


def test_each_bad_field_gets_its_own_message_in_one_answer(api):
    response = post_json(
        api, {"problem_statement": "short", "problem_context": [], "max_rounds": 99}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"problem_statement", "problem_context", "max_rounds"}


@pytest.mark.parametrize(
    ("statement", "rounds"), [("x" * 10, 1), ("x" * 10_000, 10), (" " * 5 + "y" * 10_000, 5)]
)
def test_the_bounds_themselves_are_accepted(api, statement, rounds):
    response = post_json(api, {"problem_statement": statement, "max_rounds": rounds})
    assert response.status_code == 201, response.content


def test_a_context_just_under_50_kb_is_accepted(api):
    context = {"notes": "x" * (50 * 1024 - 20)}
    assert len(json.dumps(context).encode()) <= 50 * 1024
    response = post_json(api, {"problem_statement": STATEMENT, "problem_context": context})
    assert response.status_code == 201


def test_a_context_nested_too_deeply_is_400(api, user):
    deep: dict = {}
    for _ in range(100):
        deep = {"d": deep}
    response = post_json(api, {"problem_statement": STATEMENT, "problem_context": deep})
    assert response.status_code == 400
    assert "problem_context" in response.json()
    assert not DeliberationSession.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    "raw",
    [
        '{"problem_statement": "Should we move to Lisbon?"',
        "not json at all",
        '{"problem_statement": NaN}',
        "[" * 50_000 + "]" * 50_000,
    ],
    ids=["truncated", "text", "nan", "nested-too-deeply"],
)
def test_a_malformed_json_body_is_400_with_a_detail(api, user, raw):
    response = api.post(SESSIONS, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert not DeliberationSession.objects.filter(user=user).exists()


@pytest.mark.parametrize("body", [[], "a string", 42])
def test_a_body_that_is_not_an_object_is_400(api, user, body):
    response = post_json(api, body)
    assert response.status_code == 400
    assert response.json()["non_field_errors"]
    assert not DeliberationSession.objects.filter(user=user).exists()


def test_a_form_encoded_body_is_415_and_writes_nothing(api, user):
    response = api.post(
        SESSIONS,
        data=f"problem_statement={STATEMENT}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]
    assert not DeliberationSession.objects.filter(user=user).exists()


# --- idempotency --------------------------------------------------------------------------------


def test_an_idempotency_key_replay_returns_the_same_session_with_200(api, user):
    first = post_json(api, {"problem_statement": STATEMENT}, HTTP_IDEMPOTENCY_KEY="req-1")
    replay = post_json(api, {"problem_statement": STATEMENT}, HTTP_IDEMPOTENCY_KEY="req-1")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    assert DeliberationSession.objects.filter(user=user).count() == 1


def test_a_new_idempotency_key_creates_a_new_session(api, user):
    post_json(api, {"problem_statement": STATEMENT}, HTTP_IDEMPOTENCY_KEY="req-1")
    response = post_json(api, {"problem_statement": STATEMENT}, HTTP_IDEMPOTENCY_KEY="req-2")
    assert response.status_code == 201
    assert DeliberationSession.objects.filter(user=user).count() == 2


def test_an_overlong_idempotency_key_is_400(api, user):
    response = post_json(api, {"problem_statement": STATEMENT}, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not DeliberationSession.objects.filter(user=user).exists()


# --- list ---------------------------------------------------------------------------------------


def test_list_has_the_documented_shape_newest_first(api, user):
    sessions = [SessionFactory(user=user) for _ in range(3)]
    response = api.get(SESSIONS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == LIST_KEYS
    assert [s["id"] for s in body["sessions"]] == [s.id for s in reversed(sessions)]
    assert (body["total"], body["limit"], body["offset"]) == (3, 20, 0)
    assert (body["has_more"], body["next_offset"]) == (False, None)


def test_list_pages_with_limit_and_offset(api, user):
    sessions = list(reversed([SessionFactory(user=user) for _ in range(5)]))
    body = api.get(SESSIONS, {"limit": 2, "offset": 2}).json()
    assert [s["id"] for s in body["sessions"]] == [s.id for s in sessions[2:4]]
    assert (body["total"], body["has_more"], body["next_offset"]) == (5, True, 4)


def test_list_filters_on_status(api, user):
    SessionFactory(user=user)
    running = SessionFactory(user=user, status=Status.RUNNING)
    body = api.get(SESSIONS, {"status": "running"}).json()
    assert [s["id"] for s in body["sessions"]] == [running.id]
    assert body["total"] == 1


def test_a_blank_status_filter_lists_everything(api, user):
    SessionFactory(user=user)
    SessionFactory(user=user, status=Status.RUNNING)
    assert api.get(SESSIONS, {"status": ""}).json()["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"status": "deleted"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "abc"}, "offset"),
    ],
)
def test_bad_list_parameters_are_400_with_a_message_for_the_field(api, params, field):
    response = api.get(SESSIONS, params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_list_never_shows_another_users_sessions(api, other_user):
    SessionFactory(user=other_user)
    body = api.get(SESSIONS).json()
    assert (body["sessions"], body["total"]) == ([], 0)


# --- detail and delete --------------------------------------------------------------------------


def test_detail_has_the_documented_fields(api, user):
    session = SessionFactory(
        user=user, status=Status.COMPLETED, synthesis_text="Go.", final_recommendation="Move."
    )
    response = api.get(detail_url(session.id))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_KEYS  # the owner's id stays private
    assert (body["synthesis"], body["final_recommendation"]) == ("Go.", "Move.")


def test_detail_is_right_after_redis_is_flushed_and_refills_it(api, user, clean_redis):
    session = SessionFactory(user=user, status=Status.COMPLETED, synthesis_text="Go.")
    api.get(detail_url(session.id))
    clean_redis.flushdb()
    assert SessionCache.get(session.id) is None
    response = api.get(detail_url(session.id))
    assert response.json()["synthesis"] == "Go."
    assert SessionCache.get(session.id)["synthesis"] == "Go."


def test_another_users_session_is_404_on_detail_and_delete(api, other_user):
    theirs = SessionFactory(user=other_user)
    assert api.get(detail_url(theirs.id)).status_code == 404
    assert api.delete(detail_url(theirs.id)).status_code == 404
    assert DeliberationSession.objects.get(pk=theirs.id).status == Status.CREATED


def test_an_unknown_session_is_404(api):
    response = api.get(detail_url("bo1_00000000-0000-4000-8000-000000000000"))
    assert response.status_code == 404
    assert response.json()["detail"]


def test_delete_is_204_then_hidden_from_list_and_detail(
    api, user, django_capture_on_commit_callbacks
):
    session = SessionFactory(user=user)
    api.get(detail_url(session.id))  # a hot entry exists
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(detail_url(session.id))
    assert response.status_code == 204
    assert api.get(detail_url(session.id)).status_code == 404
    assert api.get(SESSIONS).json()["total"] == 0
    assert api.delete(detail_url(session.id)).status_code == 404
    assert DeliberationSession.objects.get(pk=session.id).status == Status.DELETED  # kept


def test_deleting_a_running_session_kills_it_first(api, user):
    session = SessionFactory(user=user, status=Status.RUNNING)
    assert api.delete(detail_url(session.id)).status_code == 204
    assert SessionEvent.objects.filter(session=session, event_type="killed").exists()


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", SESSIONS),
        ("post", SESSIONS),
        ("get", detail_url("bo1_00000000-0000-4000-8000-000000000000")),
        ("delete", detail_url("bo1_00000000-0000-4000-8000-000000000000")),
        ("get", detail_url("bo1_00000000-0000-4000-8000-000000000000") + "/events"),
    ],
)
def test_every_endpoint_is_401_without_credentials(anon, method, path):
    response = getattr(anon, method)(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_a_wrong_token_is_401(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(SESSIONS).status_code == 401


def test_a_logged_in_browser_session_works_with_its_csrf_token(client, user):
    client.force_login(user)
    assert client.get(SESSIONS).status_code == 200
    csrf_client = type(client)(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    refused = csrf_client.post(
        SESSIONS, json.dumps({"problem_statement": STATEMENT}), content_type="application/json"
    )
    assert refused.status_code == 403  # a cookie alone cannot write
    csrf_client.get("/admin/login/")
    token = csrf_client.cookies["csrftoken"].value
    created = csrf_client.post(
        SESSIONS,
        json.dumps({"problem_statement": STATEMENT}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert created.status_code == 201
