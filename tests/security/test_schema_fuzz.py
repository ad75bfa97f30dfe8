"""Schemathesis drives every operation of /api/schema/ with generated requests, authenticated by
token: no answer is a 5xx, and every answer conforms to the schema (status, headers, body)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bo1site.wsgi import application
from sessions_app.models import SESSION_ID_REGEX, Status
from sessions_app.services import session_transition
from tests.factories import SessionFactory
from webhooks.models import Endpoint

MAX_EXAMPLES = 25

# The project serves its own schema; requests go to the same WSGI application, in process.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
targets: dict[str, Any] = {}


@schema.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any]) -> dict[str, Any]:
    """Most requests name one of the caller's sessions; the rest whatever was generated."""
    if path_parameters and "endpoint_id" in path_parameters and targets:  # noqa: SIM102
        if targets["chooser"].random() < 0.7:
            path_parameters["endpoint_id"] = str(targets["endpoint"])
    # Only an id of the right shape is swapped: one that breaks the pattern was generated to be
    # refused (a negative case), and must stay so.
    if (
        path_parameters
        and re.fullmatch(SESSION_ID_REGEX, str(path_parameters.get("session_id", "")))
        and targets
    ):
        if context.operation.path.endswith("/stream"):
            # A live stream never ends; a finished session's replays and closes.
            path_parameters["session_id"] = targets["finished"]
        elif targets["chooser"].random() < 0.7:
            path_parameters["session_id"] = targets["chooser"].choice(targets["own"])
    return path_parameters


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


@schema.hook
def filter_body(context: Any, body: Any) -> bool:
    """Leave out the two rules the schema cannot state; every other case is generated.

    - Text limits count after trimming: `maxLength` applies to the raw string, while the API
      trims surrounding spaces first, so " " * 5 + "y" * 10_000 is accepted (as documented).
    - `problem_context` may hold no NUL anywhere (PostgreSQL's jsonb cannot store one), and
      OpenAPI 3.0 has no way to say so of an object's keys.
    """
    if not isinstance(body, dict):
        return True
    padded = any(
        isinstance(value, str) and value != value.strip() and len(value) > 500
        for value in body.values()
    )
    return not padded and not holds_nul(body.get("problem_context"))


def resolve_to_loopback(host: str, port: int) -> list[str]:
    """The fuzz's name service: every generated webhook host is a name the tests' receivers own
    (this machine has no DNS, and a resolvable public name is a rule no schema can state)."""
    return ["127.0.0.1"]


@pytest.fixture(autouse=True)
def fuzz_world(transactional_db, user, settings, monkeypatch):
    """The caller's sessions, and rate limits out of the way (429 is documented, but noise)."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"session_create": "100000/min", "session_start": "100000/min"},
    }
    finished = SessionFactory(user=user)
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED):
        session_transition(session_id=finished.id, to=status)
    targets.update(
        endpoint=Endpoint.objects.create(user=user, url="http://127.0.0.1:9/hook").pk,
        own=[SessionFactory(user=user).id for _ in range(3)],
        finished=finished.id,
        chooser=random.Random(5),
    )
    monkeypatch.setattr("webhooks.addresses.lookup", resolve_to_loopback)
    monkeypatch.setattr("webhooks.api.serializers.MAX_ENDPOINTS_PER_USER", 100_000)
    yield
    targets.clear()


@pytest.fixture
def auth_headers(user) -> dict[str, str]:
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}"}


def rule_outside_the_schema(case: Any) -> bool:
    """Requests a rule refuses that no schema can state, rightly with a 400 (each rule is tested
    in tests/api/test_account.py or tests/api/test_history.py):

    - DELETE /me's `confirm` must be the caller's own username;
    - the list's `cursor` is opaque and signed (a generated one is never valid) and excludes
      `offset`; `created_before` must be later than `created_after`; `q` may hold only stop
      words ("the"), which is no search.
    """
    if case.operation.path == "/api/v1/me":
        return True
    query = case.query or {}
    if case.operation.path == "/api/v1/sessions":
        after, before = query.get("created_after"), query.get("created_before")
        return bool(query.get("cursor") or query.get("q")) or bool(
            after and before and str(before) <= str(after)
        )
    return False


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema_and_never_5xx(case, auth_headers):
    excluded = [positive_data_acceptance] if rule_outside_the_schema(case) else None
    case.call_and_validate(headers=auth_headers, excluded_checks=excluded)
