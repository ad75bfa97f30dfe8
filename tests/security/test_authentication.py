"""Who may call what: credentials on every endpoint but health and the docs, CSRF on cookie
sessions, the admin for staff only."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db

PUBLIC = {
    "api/health",
    "api/health/db",
    "api/health/redis",
    "api/schema/",
    "api/docs/",
    "accounts/login/",
    "accounts/logout/",
    "^api/v1/",  # what names no route: a JSON 404, with or without credentials
}
METHODS = ("get", "post", "put", "patch", "delete")
CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def routes(patterns=None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """Every route of the project as (pattern text, pattern), found by walking the resolver."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def concrete(route: str, session_id: str) -> str:
    return "/" + CONVERTER.sub(lambda m: session_id if m.group(1) == "session_id" else "x", route)


def api_routes() -> list[str]:
    return sorted(r for r, _ in routes() if r.startswith("api/") and r not in PUBLIC)


def page_routes() -> list[str]:
    """The dashboard's HTML pages (the admin has its own test)."""
    return sorted(
        r for r, _ in routes() if not r.startswith(("api/", "admin/")) and r not in PUBLIC
    )


def test_the_walk_finds_every_api_endpoint():
    found = set(api_routes())
    for expected in (
        "api/v1/sessions",
        "api/v1/sessions/<session_id:session_id>",
        "api/v1/sessions/<session_id:session_id>/events",
        "api/v1/sessions/<session_id:session_id>/stream",
        "api/v1/sessions/<session_id:session_id>/export",
        "api/v1/sessions/<session_id:session_id>/start",
        "api/v1/sessions/<session_id:session_id>/kill",
    ):
        assert expected in found


@pytest.mark.parametrize("route", api_routes())
@pytest.mark.parametrize("credentials", ["none", "bad token", "malformed header"])
def test_every_api_endpoint_answers_401_without_valid_credentials(route, credentials, user):
    session = SessionFactory(user=user)  # a real id: ownership must not be checked first
    client = APIClient()
    if credentials == "bad token":
        client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    elif credentials == "malformed header":
        client.credentials(HTTP_AUTHORIZATION="Token")
    url = concrete(route, session.id)
    for method in METHODS:
        response = getattr(client, method)(url)
        if response.status_code == 405:
            continue
        assert response.status_code == 401, (method, url, response.status_code)
        assert response["WWW-Authenticate"].startswith("Token"), (method, url)


def test_every_operation_in_the_schema_answers_401_without_credentials(user, anon):
    session = SessionFactory(user=user)
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        url = path.replace("{session_id}", session.id)
        for method in operations:
            if method not in METHODS:
                continue
            response = getattr(anon, method)(url)
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("route", ["api/health", "api/health/db", "api/health/redis"])
def test_health_needs_no_credentials(route, anon):
    assert anon.get(f"/{route}").status_code == 200


def test_api_schema_and_docs_need_no_credentials(anon):
    assert anon.get("/api/schema/").status_code == 200
    assert anon.get("/api/docs/").status_code == 200


@pytest.mark.parametrize("route", page_routes())
def test_every_dashboard_page_sends_an_anonymous_visitor_to_the_login_page(route, user, client):
    url = concrete(route, SessionFactory(user=user).id)
    response = client.get(url)
    assert response.status_code == 302, (url, response.status_code)
    assert response["Location"].startswith("/accounts/login/")


def test_the_admin_is_for_staff_only(client, user):
    anonymous = client.get("/admin/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]

    client.force_login(user)  # an ordinary account, even with a valid login
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/sessions_app/deliberationsession/").status_code == 302

    staff = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/sessions_app/deliberationsession/").status_code == 200


def test_the_admin_login_refuses_a_non_staff_account(client, user):
    response = client.post(
        "/admin/login/", {"username": user.username, "password": "secret-pass-123"}
    )
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session


class TestCsrfOnCookieSessions:
    """A logged-in browser's cookie is not enough for an unsafe request: CSRF is enforced."""

    @pytest.fixture
    def browser(self, user) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(user)
        return client

    def test_unsafe_requests_without_a_csrf_token_are_refused(self, browser, user):
        session = SessionFactory(user=user)
        body = {"problem_statement": "Should we run the offsite in March or in May?"}
        created = browser.post("/api/v1/sessions", body, format="json")
        assert created.status_code == 403
        assert "CSRF" in created.json()["detail"]
        assert browser.post(f"/api/v1/sessions/{session.id}/start").status_code == 403
        assert browser.post(f"/api/v1/sessions/{session.id}/kill").status_code == 403
        assert browser.delete(f"/api/v1/sessions/{session.id}").status_code == 403
        session.refresh_from_db()
        assert session.status == "created"

    def test_a_request_with_the_csrf_token_goes_through(self, browser):
        browser.get("/sessions/new")  # a dashboard page with a form sets the CSRF cookie
        token = browser.cookies["csrftoken"].value
        body = {"problem_statement": "Should we run the offsite in March or in May?"}
        created = browser.post("/api/v1/sessions", body, format="json", HTTP_X_CSRFTOKEN=token)
        assert created.status_code == 201

    def test_safe_requests_with_the_cookie_need_no_token(self, browser):
        assert browser.get("/api/v1/sessions").status_code == 200

    def test_token_authenticated_requests_need_no_csrf_token(self, user):
        from tests.conftest import token_client

        client = token_client(user)
        client.handler.enforce_csrf_checks = True
        body = {"problem_statement": "Should we run the offsite in March or in May?"}
        assert client.post("/api/v1/sessions", body, format="json").status_code == 201
