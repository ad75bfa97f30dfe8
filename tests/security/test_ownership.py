"""Another user's session does not exist, as far as every endpoint is concerned: 404, never 403."""

from __future__ import annotations

import pytest

from sessions_app.models import SessionEvent, Status
from sessions_app.services import NewEvent, session_transition
from tests.security.test_authentication import METHODS, api_routes, concrete

pytestmark = pytest.mark.django_db

SESSION_ROUTES = [r for r in api_routes() if "<session_id:session_id>" in r]
BODIES = {"kill": {"reason": "mine now"}, "clarify": {"answer": "yes"}, "resume": {}}


def test_every_endpoint_of_a_session_is_covered():
    suffixes = {r.rsplit(">", 1)[1] for r in SESSION_ROUTES}
    assert {"", "/events", "/stream", "/export", "/start", "/pause", "/resume", "/kill"} <= suffixes
    assert "/clarify" in suffixes


def route_params() -> list:
    # The stream reads PostgreSQL from threads of its own: they see committed rows only.
    return [
        pytest.param(r, marks=pytest.mark.django_db(transaction=True))
        if r.endswith("/stream")
        else r
        for r in SESSION_ROUTES
    ]


@pytest.mark.parametrize("route", route_params())
def test_another_users_session_is_404_on_every_endpoint_and_stays_untouched(
    route, api, others_session
):
    session_transition(
        session_id=others_session.id,
        to=Status.QUEUED,
        events=[NewEvent("session_started", {"secret": "the board's notes"})],
    )
    url = concrete(route, others_session.id)
    missing = concrete(route, "bo1_00000000-0000-4000-8000-000000000000")
    body = BODIES.get(route.rsplit("/", 1)[-1], {})
    answered = 0
    for method in METHODS:
        response = getattr(api, method)(url, body, format="json")
        if response.status_code == 405:
            continue
        answered += 1
        assert response.status_code == 404, (method, url, response.status_code)
        assert b"the board's notes" not in response.content
        # Indistinguishable from a session that does not exist at all.
        twin = getattr(api, method)(missing, body, format="json")
        assert (twin.status_code, twin.json()) == (404, response.json()), (method, route)
    assert answered
    others_session.refresh_from_db()
    assert others_session.status == Status.QUEUED
    assert SessionEvent.objects.filter(session=others_session).count() == 1


def test_another_users_sessions_are_not_listed(api, others_session):
    listed = api.get("/api/v1/sessions").json()
    assert listed["total"] == 0 and listed["sessions"] == []


def test_another_users_session_cached_in_redis_is_still_404(api, others_session):
    from sessions_app.services import session_cache_refresh

    session_cache_refresh(session_id=others_session.id)  # the hot entry answers reads first
    assert api.get(f"/api/v1/sessions/{others_session.id}").status_code == 404
