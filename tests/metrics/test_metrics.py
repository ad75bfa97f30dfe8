"""GET /metrics: Prometheus text that prometheus_client's parser reads, routes as URL patterns,
a bearer token when one is set, and counters that move as sessions run."""

import socket
import uuid

import pytest
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from deliberation.runner import run_session
from sessions_app.models import Status
from sessions_app.services import session_transition
from tests.factories import SessionFactory
from tests.metrics.scrape import parse, value
from webhooks.delivery import endpoint_deliver_due
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db

NAMES = {
    "bo1_http_requests",
    "bo1_http_request_duration_seconds",
    "bo1_session_transitions",
    "bo1_deliberations_running",
    "bo1_deliberation_duration_seconds",
    "bo1_llm_requests",
    "bo1_llm_tokens",
    "bo1_llm_cost_usd",
    "bo1_outbox_pending",
    "bo1_webhook_deliveries",
    "bo1_sse_streams_open",
    "bo1_store_up",
    "bo1_webhook_endpoints",
}  # the parser names a counter's family without its _total suffix


def scrape(client=None, **headers):
    answer = (client or Client()).get("/metrics", **headers)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain; version=")
    return parse(answer.content.decode())


def test_metrics_parse_and_name_every_documented_family():
    names, _ = scrape()
    assert names >= NAMES


def test_requests_are_counted_by_url_pattern_never_by_raw_path(api, user):
    session = SessionFactory(user=user)
    _, before = scrape()
    route = resolve(f"/api/v1/sessions/{session.id}").route
    assert route.startswith("api/v1/sessions/<") and session.id not in route
    for _ in range(3):
        assert api.get(f"/api/v1/sessions/{session.id}").status_code == 200
    assert api.get(f"/api/v1/sessions/bo1_{uuid.uuid4()}").status_code == 404  # no such one
    assert Client().get("/no/such/page/at/all").status_code in (302, 404)
    _, after = scrape()
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("bo1_http_requests_total", method="GET", route=route, status="200") == 3
    assert delta("bo1_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("bo1_http_request_duration_seconds_count", route=route) == 4
    every_label = {v for (_, labels) in after for _, v in labels}
    assert session.id not in str(every_label)
    assert not any("no/such/page" in v for v in every_label)


def test_a_token_guards_metrics_when_it_is_set(settings):
    settings.BO1_METRICS_TOKEN = "metrics-s3cret"
    refused = Client().get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Token metrics-s3cret").status_code == 401
    names, _ = scrape(HTTP_AUTHORIZATION="Bearer metrics-s3cret")
    assert "bo1_http_requests" in names


@pytest.mark.django_db(transaction=True)
def test_counters_move_as_a_session_runs(user):
    session = SessionFactory(user=user, max_rounds=2)
    _, before = scrape()
    session_transition(session_id=session.id, to=Status.QUEUED)
    assert run_session(session.id) == "completed"
    _, after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    for status in ("queued", "running", "completed"):
        assert delta("bo1_session_transitions_total", to=status) == 1, status
    calls = delta("bo1_llm_requests_total", provider="offline", outcome="ok")
    assert calls >= 5
    assert delta("bo1_llm_tokens_total", provider="offline", kind="input") > 0
    assert delta("bo1_llm_tokens_total", provider="offline", kind="output") > 0
    assert "bo1_llm_cost_usd_total" in {n for (n, _) in after}
    assert delta("bo1_deliberation_duration_seconds_count", outcome="completed") == 1
    assert value(after, "bo1_deliberations_running") == 0


def test_the_webhook_outbox_and_deliveries_are_counted(user, endpoint, receiver):
    session = SessionFactory(user=user)
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED):
        session_transition(session_id=session.id, to=status)
    _, pending = scrape()
    assert value(pending, "bo1_outbox_pending", outbox="webhooks") == 1
    endpoint_deliver_due(endpoint_id=endpoint["id"])
    assert Delivery.objects.get().delivered_at is not None
    _, after = scrape()
    assert value(after, "bo1_outbox_pending", outbox="webhooks") == 0
    delivered = value(after, "bo1_webhook_deliveries_total", outcome="delivered")
    assert delivered - value(pending, "bo1_webhook_deliveries_total", outcome="delivered") == 1


def test_the_stores_and_webhook_endpoints_are_read_at_each_scrape(user, endpoint):
    _, samples = scrape()
    assert value(samples, "bo1_store_up", store="postgresql") == 1
    assert value(samples, "bo1_store_up", store="redis") == 1
    assert value(samples, "bo1_webhook_endpoints", state="ok") == 1
    Endpoint.objects.update(failing_since=timezone.now())
    _, samples = scrape()
    assert value(samples, "bo1_webhook_endpoints", state="failing") == 1
    assert value(samples, "bo1_webhook_endpoints", state="ok") == 0


def test_a_scrape_with_redis_unreachable_still_answers_and_says_so(settings):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there: connections are refused
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    _, samples = scrape()
    assert value(samples, "bo1_store_up", store="redis") == 0
    assert value(samples, "bo1_store_up", store="postgresql") == 1
