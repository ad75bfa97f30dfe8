"""Health endpoints: 200 when a store answers, 503 with the reason when it does not."""

import pytest
from django.db import connections

from sessions_app import health
from tests.processes import free_port

pytestmark = pytest.mark.django_db

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings):
    caches = {**settings.CACHES, "default": {**settings.CACHES["default"]}}
    caches["default"]["LOCATION"] = CLOSED_PORT_URL
    settings.CACHES = caches


@pytest.fixture
def database_down(monkeypatch):
    """The health check talks to a real PostgreSQL connection aimed at a closed port."""
    default = connections["default"]
    settings_dict = {**default.settings_dict, "HOST": "127.0.0.1", "PORT": str(free_port())}
    unreachable = type(default)(settings_dict, alias="unreachable")
    monkeypatch.setattr(health, "connection", unreachable)
    yield
    unreachable.close()


@pytest.mark.parametrize(
    ("path", "checks"),
    [
        ("/api/health", {"database": "ok", "redis": "ok"}),
        ("/api/health/db", {"database": "ok"}),
        ("/api/health/redis", {"redis": "ok"}),
    ],
)
def test_health_is_200_when_the_stores_answer(anon, path, checks):
    response = anon.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": checks}
    assert "no-cache" in response["Cache-Control"]


def test_redis_down_is_503_with_the_reason_on_redis_and_overall_health(anon, redis_down):
    for path in ("/api/health/redis", "/api/health"):
        response = anon.get(path)
        assert response.status_code == 503, path
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["reason"].startswith("redis unavailable")
        assert body["checks"]["redis"].startswith("redis unavailable")
    assert anon.get("/api/health/db").status_code == 200


def test_database_down_is_503_with_the_reason(anon, database_down):
    for path in ("/api/health/db", "/api/health"):
        response = anon.get(path)
        assert response.status_code == 503, path
        body = response.json()
        assert body["reason"].startswith("database unavailable: OperationalError")
        assert body["checks"]["database"].startswith("database unavailable")
    assert anon.get("/api/health/redis").status_code == 200


def test_health_needs_no_credentials_and_only_answers_get(anon):
    assert anon.post("/api/health").status_code == 405
