"""Account deletion finishes in the worker, or in the request when the task queue is down."""

import time

import pytest
from django.contrib.auth.models import User

from sessions_app.models import DeliberationSession, SessionEvent
from tests.factories import SessionFactory
from tests.faults.wiring import REAL_BROKER_URL, point_celery_at
from tests.processes import start_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_with_the_task_queue_down_the_request_purges_the_account_itself(api, user, caplog):
    session = SessionFactory(user=user, status="completed", last_sequence=1)
    SessionEvent.objects.create(session=session, sequence=1, event_type="contribution")
    point_celery_at("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        response = api.delete("/api/v1/me", {"confirm": "alice"}, format="json")
    finally:
        point_celery_at(REAL_BROKER_URL)
    assert response.status_code == 202
    assert "the task queue failed" in caplog.text
    assert not User.objects.filter(pk=user.pk).exists()
    assert not DeliberationSession.objects.filter(pk=session.pk).exists()


@pytest.mark.slow
def test_a_real_worker_purges_the_closed_account(api, user, broker_client):
    sessions = [SessionFactory(user=user) for _ in range(3)]
    worker = start_worker()
    try:
        assert api.delete("/api/v1/me", {"confirm": "alice"}, format="json").status_code == 202
        deadline = time.monotonic() + 60
        while User.objects.filter(pk=user.pk).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()
    assert not User.objects.filter(pk=user.pk).exists()
    assert not DeliberationSession.objects.filter(pk__in=[s.pk for s in sessions]).exists()
