"""PostgreSQL unreachable at a request: a 503 with the reason, never a 500 or a half write."""

import json
from contextlib import contextmanager

import pytest
from django.db import connections

from sessions_app.models import DeliberationSession
from tests.processes import free_port

# Real connections are closed and reopened, so no test transaction may span the outage.
pytestmark = pytest.mark.django_db(transaction=True)

STATEMENT = "Should we move our whole team to Lisbon?"


@contextmanager
def postgres_unreachable():
    """The connection points at a closed port inside the block, and back afterwards."""
    conn = connections["default"]
    port = conn.settings_dict["PORT"]
    conn.close()
    conn.settings_dict["PORT"] = str(free_port())
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict["PORT"] = port


def assert_unavailable(response):
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["reason"].startswith("database unavailable: OperationalError")
    assert "nothing was changed" in body["detail"]
    assert response["Retry-After"] == "5"


def test_create_is_503_with_the_reason_and_writes_nothing(api, user):
    with postgres_unreachable():
        response = api.post(
            "/api/v1/sessions",
            data=json.dumps({"problem_statement": STATEMENT}),
            content_type="application/json",
        )
    assert_unavailable(response)
    assert not DeliberationSession.objects.filter(user=user).exists()


def test_list_detail_and_delete_are_503_with_the_reason(api):
    with postgres_unreachable():
        responses = [
            api.get("/api/v1/sessions"),
            api.get("/api/v1/sessions/bo1_00000000-0000-4000-8000-000000000000"),
            api.delete("/api/v1/sessions/bo1_00000000-0000-4000-8000-000000000000"),
        ]
    for response in responses:
        assert_unavailable(response)


def test_the_admin_is_503_with_the_reason_too(admin_client):
    with postgres_unreachable():
        response = admin_client.get("/admin/sessions_app/deliberationsession/")
    assert_unavailable(response)


def test_the_api_answers_again_once_postgresql_is_back(api):
    with postgres_unreachable():
        assert api.get("/api/v1/sessions").status_code == 503
    assert api.get("/api/v1/sessions").status_code == 200
