"""Request bodies are bounded: an oversized one is a clear JSON 413, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from rest_framework.authtoken.models import Token

from sessions_app.models import DeliberationSession
from tests.factories import SessionFactory
from tests.processes import start_web

PROBLEM = "Should we localise the product into Japanese before Korean?"


def oversized_body(settings) -> bytes:
    padding = "y" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
    return json.dumps(
        {"problem_statement": PROBLEM, "problem_context": {"notes": padding}}
    ).encode()


@pytest.mark.django_db
def test_an_oversized_json_body_is_a_413_with_a_json_reason(api, user, settings):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = oversized_body(settings)
    for url in ("/api/v1/sessions", f"/api/v1/sessions/{SessionFactory(user=user).id}/kill"):
        response = api.post(url, data=body, content_type="application/json")
        assert response.status_code == 413, (url, response.status_code)
        assert response.json()["detail"] == (
            f"Request body too large: at most {limit} bytes are accepted."
        )
    assert not DeliberationSession.objects.filter(problem_statement=PROBLEM).exists()


@pytest.mark.django_db
def test_a_body_just_under_the_limit_is_validated_as_usual(api, settings):
    context = {"notes": "y" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 2048)}
    response = api.post(
        "/api/v1/sessions",
        {"problem_statement": PROBLEM, "problem_context": context},
        format="json",
    )
    assert response.status_code == 400  # past the 50 KB context rule, but read and answered
    assert "problem_context" in response.json()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_production_server_refuses_an_oversized_body_with_413_not_500(user, settings):
    token = Token.objects.create(user=user).key
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    body = oversized_body(settings)
    process, base = start_web()
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=15) as http:
            sized = http.post("/api/v1/sessions", content=body)
            assert sized.status_code == 413 and "too large" in sized.json()["detail"]

            def chunks():
                for start in range(0, len(body), 65536):
                    yield body[start : start + 65536]

            # Without a Content-Length the body is not read at all: plain bad input.
            chunked = http.post("/api/v1/sessions", content=chunks())
            assert chunked.status_code == 400
    finally:
        process.stop()
    assert not DeliberationSession.objects.filter(problem_statement=PROBLEM).exists()
    assert "Traceback" not in process.log()
