"""Whatever stands in a URL's session-id segment, no store sees it unless it can be a session id:
every route that names a session answers 404 (JSON under /api/), never a 5xx."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sessions_app.models import SESSION_ID_REGEX
from tests.security.test_authentication import METHODS, api_routes, concrete, page_routes

pytestmark = pytest.mark.django_db

SESSION_ROUTES = [r for r in api_routes() + page_routes() if "session_id>" in r]
NOT_IDS = [
    "bo1_\x00",
    "bo1_%00",
    "bo1_00000000-0000-4000-8000-00000000000\x00",
    "bo1_00000000-0000-4000-8000-000000000000\x00",
    "BO1_00000000-0000-4000-8000-000000000000",
    "bo1_00000000-0000-4000-8000-00000000000G",
    "bo1_x",
    "bo1_\n",
    "\n",
    "' OR 1=1 --",
    "\ud7ff" * 300,
    "é",
]


def answer(client, method: str, url: str):
    return getattr(client, method)(url, {}, format="json") if method != "get" else client.get(url)


def test_every_route_that_names_a_session_takes_the_session_id_converter():
    assert len(SESSION_ROUTES) >= 10
    assert not [r for r in api_routes() + page_routes() if "<str:session_id>" in r]


@pytest.mark.parametrize("route", SESSION_ROUTES)
@pytest.mark.parametrize("segment", NOT_IDS)
def test_a_segment_that_cannot_be_a_session_id_is_a_404(route, segment, api):
    url = concrete(route, quote(segment, safe=""))
    for method in METHODS:
        response = answer(api, method, url)
        assert response.status_code == 404, (method, url, response.status_code)
        if route.startswith("api/"):
            assert response.json() == {"detail": "Not found."}


def test_a_nul_byte_in_the_id_of_kill_is_a_404_not_a_500(api):
    response = api.post("/api/v1/sessions/bo1_%00/kill", {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(SESSION_ROUTES),
    method=st.sampled_from(METHODS),
    segment=st.text(min_size=1, max_size=60).filter(
        lambda s: s not in (".", "..") and re.fullmatch(SESSION_ID_REGEX, s) is None
    ),
)
def test_any_generated_segment_is_a_404_and_never_a_5xx(api, route, method, segment):
    url = concrete(route, quote(segment, safe=""))
    response = answer(api, method, url)
    assert response.status_code == 404, (method, url, response.status_code)
