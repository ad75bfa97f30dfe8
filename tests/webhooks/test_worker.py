"""Real Celery workers deliver webhooks: a finished deliberation is announced, and neither a
worker killed mid-delivery nor a lost queue message loses a delivery."""

import threading

import pytest
from django_redis import get_redis_connection
from standardwebhooks import Webhook

from bo1site.celery import app as celery_app
from sessions_app.models import Status
from sessions_app.services import session_transition
from tests.deliberation.test_worker import create_and_start, row, wait_until
from tests.factories import SessionFactory
from tests.processes import start_worker
from tests.webhooks.receiver import Answer
from webhooks.models import Delivery, DeliveryStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "BO1_WEBHOOK_SWEEP_INTERVAL": "0.5",
    "BO1_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2",
    "BO1_LEASE_TTL": "3",
    "BO1_REAPER_INTERVAL": "1",
}


def complete(session):
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED):
        session_transition(session_id=session.id, to=status)
    return session


def test_a_deliberation_run_by_the_worker_is_announced_when_it_completes(api, endpoint, receiver):
    worker = start_worker(**WORKER_ENV)
    try:
        session_id = create_and_start(api, max_rounds=2)
        wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed")
        (received,) = receiver.wait_for(1, timeout=30)
        wait_until(  # the attempt is recorded once the answer is in
            lambda: Delivery.objects.get().status == DeliveryStatus.DELIVERED, what="recorded"
        )
    finally:
        worker.stop()
    body = Webhook(endpoint["secret"]).verify(received.body, received.headers)
    assert body["type"] == "session.completed"
    assert body["data"]["session_id"] == session_id
    assert body["data"]["final_recommendation"] == row(session_id).final_recommendation
    assert "Webhook sweeper started" in worker.log()


def test_a_worker_killed_mid_delivery_loses_nothing_and_the_next_sends_the_same_id(
    user, endpoint, receiver
):
    hold = threading.Event()
    receiver.answers = [Answer(status=200, hold=hold)]  # the first request hangs
    doomed = start_worker(name="doomed-webhook-worker", **WORKER_ENV)
    try:
        sessions = [complete(SessionFactory(user=user)) for _ in range(3)]
        receiver.wait_for(1, timeout=30)  # the worker is inside the first delivery
    finally:
        doomed.kill_hard()
        hold.set()
    first = Delivery.objects.order_by("id").first()
    assert first.status == DeliveryStatus.PENDING and first.attempts == 0

    rescue = start_worker(name="rescue-webhook-worker", **WORKER_ENV)
    try:
        received = receiver.wait_for(4, timeout=30)
        wait_until(
            lambda: not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists(),
            timeout=30,
            what="all delivered",
        )
    finally:
        rescue.stop()
    ids = [r.headers["webhook-id"] for r in received]
    expected = list(Delivery.objects.order_by("id").values_list("webhook_id", flat=True))
    assert ids == [expected[0], *expected]  # the interrupted one again (same id), then in order
    order = [Webhook(endpoint["secret"]).verify(r.body, r.headers)["data"]["session_id"]
             for r in received[1:]]  # fmt: skip
    assert order == [s.id for s in sessions]


def test_deliveries_whose_queue_message_was_lost_are_sent_by_the_sweeper(user, endpoint, receiver):
    session = complete(SessionFactory(user=user))
    # The broker lost the message (an outage, a flushed Redis): only the outbox row remains.
    broker = celery_app.connection_for_write().default_channel.client
    broker.flushdb()
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
    worker = start_worker(**WORKER_ENV)
    try:
        (received,) = receiver.wait_for(1, timeout=30)
    finally:
        worker.stop()
    assert received.headers["webhook-id"] == Delivery.objects.get().webhook_id
    assert (
        Webhook(endpoint["secret"]).verify(received.body, received.headers)["data"]["session_id"]
        == session.id
    )
    get_redis_connection("default")  # the test's own stores are untouched
