"""Structured logs: X-Request-ID used or made and echoed; with BO1_LOG_FORMAT=json one JSON object
per line with request_id, session_id and user_id where known, and the seed's messages intact."""

import io
import json
import logging
import re

import pytest
from rest_framework.authtoken.models import Token

from observability.logs import ContextFilter, JsonFormatter, bound
from tests.processes import start_web, start_worker

pytestmark = pytest.mark.django_db

PROBLEM = "Should we move the whole team to a four-day week?"


@pytest.fixture
def json_lines():
    """The project's loggers, written as the console handler writes them in JSON mode."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    loggers = [logging.getLogger(name) for name in ("sessions_app", "deliberation", "webhooks")]
    for logger in loggers:
        logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for logger in loggers:
        logger.removeHandler(handler)


def test_an_incoming_request_id_is_echoed_and_one_is_made_otherwise(api):
    given = api.get("/api/v1/sessions", HTTP_X_REQUEST_ID="req-123.abc")
    assert given["X-Request-ID"] == "req-123.abc"
    made = api.get("/api/v1/sessions")
    assert re.fullmatch(r"[0-9a-f]{32}", made["X-Request-ID"])
    for unsafe in ("has spaces in it", "x" * 200, "new\nline"):
        replaced = api.get("/api/v1/sessions", HTTP_X_REQUEST_ID=unsafe)
        assert re.fullmatch(r"[0-9a-f]{32}", replaced["X-Request-ID"]), unsafe


@pytest.mark.django_db(transaction=True)  # the create's log line is written on commit
def test_json_lines_carry_the_request_the_user_and_the_session(api, user, json_lines):
    created = api.post(
        "/api/v1/sessions", {"problem_statement": PROBLEM}, format="json",
        HTTP_X_REQUEST_ID="create-1",
    )  # fmt: skip
    session_id = created.json()["id"]
    api.post(f"/api/v1/sessions/{session_id}/kill", HTTP_X_REQUEST_ID="kill-1")
    lines = json_lines()
    create = next(line for line in lines if line["message"].startswith("Created session"))
    assert create["message"] == (
        f"Created session: {session_id} for user: {user.pk} (saved to both Redis and PostgreSQL)"
    )
    assert create["request_id"] == "create-1"
    assert create["user_id"] == user.pk
    assert {"time", "level", "logger"} <= set(create)
    assert create["level"] == "INFO" and create["logger"] == "sessions_app.services"
    killed = next(line for line in lines if "status to 'killed'" in line["message"])
    assert killed["message"] == f"Updated session {session_id} status to 'killed' in PostgreSQL"
    assert (killed["request_id"], killed["session_id"], killed["user_id"]) == (
        "kill-1", session_id, user.pk,
    )  # fmt: skip


def test_outside_a_request_only_what_is_known_is_written(json_lines):
    logger = logging.getLogger("deliberation.test")
    with bound(session_id="bo1_x"):
        logger.warning("inside a run")
    logger.warning("nothing known")
    inside, outside = json_lines()
    assert inside["session_id"] == "bo1_x" and "request_id" not in inside
    assert set(outside) == {"time", "level", "logger", "message"}


def test_an_exception_is_kept_in_its_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("webhooks.test").exception("it failed")
    (line,) = json_lines()
    assert line["message"] == "it failed"
    assert "ValueError: boom" in line["exception"]


def parsed_lines(log: str) -> list[dict]:
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_production_server_writes_only_json_lines(user):
    token = Token.objects.create(user=user).key
    web, base = start_web(BO1_LOG_FORMAT="json")
    try:
        import httpx

        answer = httpx.post(
            f"{base}/api/v1/sessions",
            json={"problem_statement": PROBLEM},
            headers={"Authorization": f"Token {token}", "X-Request-ID": "from-the-proxy"},
        )
        assert answer.status_code == 201
        assert answer.headers["X-Request-ID"] == "from-the-proxy"
        httpx.get(f"{base}/no-such-page")
    finally:
        web.stop()
    lines = parsed_lines(web.log())  # gunicorn's, uvicorn's access lines and the app's alike
    create = next(line for line in lines if line["message"].startswith("Created session"))
    assert (create["request_id"], create["user_id"]) == ("from-the-proxy", user.pk)
    assert any(line["logger"].startswith("gunicorn") for line in lines)
    assert any(line["logger"] == "uvicorn.error" for line in lines)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_worker_writes_json_lines():
    worker = start_worker(BO1_LOG_FORMAT="json")
    worker.stop()
    lines = parsed_lines(worker.log())
    assert any(line["message"].endswith(" ready.") for line in lines)
