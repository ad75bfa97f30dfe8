"""Per-user rate limits on create and start: 429 with Retry-After, counted in Redis, and let
through (logged) when Redis is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sessions_app.models import DeliberationSession, Status
from tests.factories import SessionFactory
from tests.faults.wiring import redis_in_process_via
from tests.processes import ROOT

pytestmark = pytest.mark.django_db

PROBLEM = "Should we hire a second designer before the spring launch?"


@pytest.fixture
def low_limits(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"session_create": "3/min", "session_start": "2/min"},
    }


def create(client):
    return client.post("/api/v1/sessions", {"problem_statement": PROBLEM}, format="json")


def test_create_is_limited_per_user_with_429_and_retry_after(low_limits, api, other_api):
    for _ in range(5):  # reads are not counted
        assert api.get("/api/v1/sessions").status_code == 200
    assert [create(api).status_code for _ in range(3)] == [201, 201, 201]
    refused = create(api)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    assert DeliberationSession.objects.filter(problem_statement=PROBLEM).count() == 3
    assert create(other_api).status_code == 201  # someone else's budget is their own


def test_the_count_lives_in_redis_with_an_expiry(low_limits, api, user, direct_redis):
    create(api)
    keys = list(direct_redis.scan_iter(match=f"bo1:throttle:session_create:user{user.pk}:*"))
    assert len(keys) == 1
    assert direct_redis.get(keys[0]) == b"1"
    assert 0 < direct_redis.ttl(keys[0]) <= 61


def test_start_is_limited_per_user(low_limits, api, user):
    sessions = [SessionFactory(user=user) for _ in range(3)]
    answers = [api.post(f"/api/v1/sessions/{s.id}/start").status_code for s in sessions]
    assert answers == [202, 202, 429]
    assert DeliberationSession.objects.get(pk=sessions[2].id).status == Status.CREATED


def test_with_redis_down_requests_go_through_and_the_skipped_check_is_logged(
    low_limits, api, redis_proxy, settings, caplog
):
    with redis_in_process_via(redis_proxy, settings):
        redis_proxy.cut()
        assert [create(api).status_code for _ in range(5)] == [201] * 5
    assert "Rate limit session_create not checked" in caplog.text
    assert "Redis unavailable" in caplog.text


def configured_rates(**variables: str) -> subprocess.CompletedProcess:
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bo1site.settings", **variables}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )


def test_rates_come_from_the_environment():
    out = configured_rates(BO1_THROTTLE_CREATE="7/hour", BO1_THROTTLE_START="")
    assert out.returncode == 0, out.stderr
    rates = json.loads(out.stdout.strip().splitlines()[-1])
    assert rates == {"session_create": "7/hour", "session_start": ""}  # "" switches it off


def test_a_malformed_rate_stops_the_service_at_startup():
    out = configured_rates(BO1_THROTTLE_START="thirty a minute")
    assert out.returncode != 0
    assert "BO1_THROTTLE_START must look like 60/min" in out.stderr


def test_an_empty_rate_switches_the_limit_off(settings, api):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"session_create": "", "session_start": ""},
    }
    assert {create(api).status_code for _ in range(5)} == {201}
