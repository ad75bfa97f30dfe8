"""Redis down: the API answers from PostgreSQL, start refuses with 503, and all heals after."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache

from sessions_app.cache import entry_key
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.faults.proxy import FaultProxy
from tests.faults.wiring import redis_in_process_via

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "Should we move our customer support team to a four-day work week?"


@pytest.fixture
def redis_link(redis_proxy: FaultProxy, settings) -> Iterator[FaultProxy]:
    """This process reaches Redis (cache, streams, broker) only through the proxy."""
    with redis_in_process_via(redis_proxy, settings):
        yield redis_proxy


def hot_entry(direct_redis, session_id: str) -> dict | None:
    raw = direct_redis.get(cache.make_key(entry_key(session_id)))
    return json.loads(raw) if raw else None


def create(api, problem: str = PROBLEM) -> str:
    response = api.post("/api/v1/sessions", {"problem_statement": problem}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize("mode", ["reset", "blackhole"])
def test_with_redis_down_api_answers_from_postgres_and_start_is_503_until_redis_returns(
    api, redis_link, direct_redis, broker_client, caplog, mode
):
    earlier = create(api, "Should we renew the lease on our downtown office for five years?")
    assert hot_entry(direct_redis, earlier)["status"] == Status.CREATED

    redis_link.cut(mode)

    # Create, list and detail keep working from PostgreSQL.
    session_id = create(api)
    assert DeliberationSession.objects.get(pk=session_id).status == Status.CREATED
    assert hot_entry(direct_redis, session_id) is None
    assert f"Created session: {session_id}" in caplog.text
    assert "Redis write skipped" in caplog.text
    listed = api.get("/api/v1/sessions")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["sessions"]] == [session_id, earlier]
    assert listed.json()["total"] == 2
    detail = api.get(f"/api/v1/sessions/{session_id}")
    assert detail.status_code == 200
    assert detail.json()["status"] == Status.CREATED
    assert detail.json()["problem_statement"] == PROBLEM
    events = api.get(f"/api/v1/sessions/{session_id}/events")
    assert events.status_code == 200 and events.json()["count"] == 0

    # Health says which store is down.
    health = api.get("/api/health/redis")
    assert health.status_code == 503
    assert "redis unavailable" in health.json()["reason"]
    assert api.get("/api/health/db").status_code == 200
    assert api.get("/api/health").status_code == 503

    # Start is refused quickly, with the reason, and nothing changes.
    began = time.monotonic()
    refused = api.post(f"/api/v1/sessions/{session_id}/start")
    elapsed = time.monotonic() - began
    assert refused.status_code == 503, refused.content
    assert elapsed < 5, f"start took {elapsed:.1f}s to refuse"
    assert refused.json()["reason"]
    assert refused["Retry-After"]
    assert DeliberationSession.objects.get(pk=session_id).status == Status.CREATED
    assert not SessionEvent.objects.filter(session_id=session_id).exists()
    assert broker_client.llen("celery") == 0

    # Redis is back: reads refill the cache, start works and queues exactly one run.
    redis_link.restore()
    assert api.get("/api/health/redis").status_code == 200
    assert api.get(f"/api/v1/sessions/{session_id}").status_code == 200
    assert hot_entry(direct_redis, session_id)["status"] == Status.CREATED
    started = api.post(f"/api/v1/sessions/{session_id}/start")
    assert started.status_code == 202, started.content
    assert DeliberationSession.objects.get(pk=session_id).status == Status.QUEUED
    assert hot_entry(direct_redis, session_id)["status"] == Status.QUEUED
    assert broker_client.llen("celery") == 1
