"""Delivery against a real HTTP receiver on loopback: signed, retried with the same id, in order,
bounded (no redirects, 4 KB, time limit), refused for private targets, disabled when failing."""

import json
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from sessions_app.models import PauseReason, Status
from sessions_app.services import NewEvent, session_transition
from tests.factories import SessionFactory
from tests.webhooks.receiver import Answer
from webhooks.delivery import endpoint_deliver_due
from webhooks.models import Delivery, DeliveryStatus, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.BO1_WEBHOOK_RETRY_SCHEDULE = [0.05, 0.05, 0.05]


def finish(session, to=Status.COMPLETED, **kwargs):
    session_transition(session_id=session.id, to=Status.QUEUED)
    session_transition(session_id=session.id, to=Status.RUNNING)
    return session_transition(session_id=session.id, to=to, **kwargs)


def deliver(endpoint):
    return endpoint_deliver_due(endpoint_id=endpoint["id"])


def verified(received, secret):
    """The body, verified with the reference Standard Webhooks library."""
    return Webhook(secret).verify(received.body, received.headers)


def test_a_delivery_is_recorded_in_the_status_changes_transaction_or_not_at_all(user, endpoint):
    session = SessionFactory(user=user)
    session_transition(session_id=session.id, to=Status.QUEUED)
    session_transition(session_id=session.id, to=Status.RUNNING)
    assert not Delivery.objects.exists()  # queued and running are not announced
    with pytest.raises(RuntimeError), transaction.atomic():
        session_transition(session_id=session.id, to=Status.COMPLETED)
        assert Delivery.objects.count() == 1  # written inside the transaction...
        raise RuntimeError("the transaction fails after the status change")
    assert not Delivery.objects.exists()  # ...and gone with it
    session.refresh_from_db()
    assert session.status == Status.RUNNING
    session_transition(session_id=session.id, to=Status.COMPLETED)
    delivery = Delivery.objects.get()
    assert (delivery.event_type, delivery.session_id) == ("session.completed", session.id)


def test_only_the_chosen_events_of_the_sessions_owner_are_recorded(api, user, other_user, receiver):
    chosen = api.post(
        "/api/v1/webhooks", {"url": receiver.url, "events": ["session.failed"]}, format="json"
    ).json()
    finish(SessionFactory(user=user), Status.COMPLETED)
    finish(SessionFactory(user=other_user), Status.FAILED)
    assert not Delivery.objects.exists()
    failed = finish(SessionFactory(user=user), Status.FAILED)
    assert list(Delivery.objects.values_list("endpoint_id", "session_id")) == [
        (chosen["id"], failed.id)
    ]


def test_the_request_is_signed_per_standard_webhooks_and_carries_the_documented_body(
    user, endpoint, receiver, settings
):
    settings.BO1_PUBLIC_URL = "https://bo1.example.com"
    session = finish(
        SessionFactory(user=user),
        fields={"final_recommendation": "Expand, in stages.", "total_cost": "0.125"},
    )
    assert deliver(endpoint) == 1
    (received,) = receiver.wait_for(1)
    body = verified(received, endpoint["secret"])
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == Delivery.objects.get().webhook_id
    assert body["type"] == "session.completed"
    assert body["timestamp"].endswith("Z")
    assert body["data"] == {
        "session_id": session.id,
        "status": "completed",
        "phase": session.phase,
        "total_cost": "0.125000",
        "final_recommendation": "Expand, in stages.",
        "pause_reason": None,
        "pending_clarification": None,
        "error": None,
        "links": {
            "api": f"https://bo1.example.com/api/v1/sessions/{session.id}",
            "dashboard": f"https://bo1.example.com/sessions/{session.id}",
        },
    }
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(received.body, received.headers)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert (delivery.attempts, delivery.last_response_status) == (1, 204)
    assert delivery.delivered_at is not None


def test_a_pause_for_clarification_carries_the_reason_and_the_question(user, endpoint, receiver):
    question = "What budget can you commit in the first year?"
    finish(
        SessionFactory(user=user),
        Status.PAUSED,
        pause_reason=PauseReason.CLARIFICATION,
        events=[NewEvent("paused", {"reason": "clarification", "question": question})],
        fields={"clarification_question": question},
    )
    deliver(endpoint)
    body = verified(receiver.wait_for(1)[0], endpoint["secret"])
    assert body["type"] == "session.paused"
    assert body["data"]["pause_reason"] == "clarification"
    assert body["data"]["pending_clarification"] == question


def test_a_failed_session_carries_its_error(user, endpoint, receiver):
    error = {"code": "timeout", "message": "The provider did not answer."}
    finish(SessionFactory(user=user), Status.FAILED, fields={"error": error})
    deliver(endpoint)
    body = verified(receiver.wait_for(1)[0], endpoint["secret"])
    assert (body["type"], body["data"]["error"]) == ("session.failed", error)


def test_a_receiver_that_was_down_gets_the_retry_with_the_same_webhook_id(user, endpoint, receiver):
    finish(SessionFactory(user=user))
    receiver.stop()
    assert deliver(endpoint) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert "ConnectError" in delivery.last_error
    assert delivery.next_attempt_at > delivery.last_attempt_at
    assert Endpoint.objects.get(pk=endpoint["id"]).failing_since is not None

    receiver.start()  # back, on the same port
    time.sleep(0.1)  # the retry's time has come (schedule of 0.05 s, jittered)
    assert deliver(endpoint) == 1
    (received,) = receiver.wait_for(1)
    assert received.headers["webhook-id"] == delivery.webhook_id
    verified(received, endpoint["secret"])  # signed afresh, with a new timestamp
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert Endpoint.objects.get(pk=endpoint["id"]).failing_since is None


def test_a_retry_is_not_sent_before_its_time(user, endpoint, receiver, settings):
    settings.BO1_WEBHOOK_RETRY_SCHEDULE = [60]
    receiver.answers = [Answer(status=500)]
    finish(SessionFactory(user=user))
    assert deliver(endpoint) == 1
    assert deliver(endpoint) == 0
    delay = Delivery.objects.get().next_attempt_at - timezone.now()
    assert timedelta(seconds=45) < delay <= timedelta(seconds=72)  # 60 s ± 20 % jitter
    assert len(receiver.received) == 1


def test_deliveries_of_one_endpoint_go_out_in_the_order_the_events_happened(
    user, endpoint, receiver
):
    sessions = [finish(SessionFactory(user=user)) for _ in range(3)]
    receiver.answers = [Answer(status=500)]  # the first one fails once
    assert deliver(endpoint) == 1  # the head failed: the later ones wait behind it
    assert len(receiver.received) == 1
    time.sleep(0.1)
    assert deliver(endpoint) == 3
    received = receiver.wait_for(4)
    order = [json.loads(r.body)["data"]["session_id"] for r in received]
    assert order == [sessions[0].id, sessions[0].id, sessions[1].id, sessions[2].id]
    assert not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()


def test_after_the_last_retry_a_delivery_is_failed_and_the_next_one_goes(
    user, endpoint, receiver, settings
):
    settings.BO1_WEBHOOK_RETRY_SCHEDULE = [0.01]
    first, second = finish(SessionFactory(user=user)), finish(SessionFactory(user=user))
    receiver.answers = [Answer(status=503), Answer(status=503)]
    deliver(endpoint)
    time.sleep(0.05)
    deliver(endpoint)
    gave_up = Delivery.objects.get(session_id=first.id)
    assert (gave_up.status, gave_up.attempts, gave_up.last_response_status) == ("failed", 2, 503)
    assert Delivery.objects.get(session_id=second.id).status == DeliveryStatus.DELIVERED


def test_redirects_are_not_followed(user, endpoint, receiver):
    receiver.answers = [Answer(status=302, headers={"Location": receiver.url + "/elsewhere"})]
    finish(SessionFactory(user=user))
    deliver(endpoint)
    assert [r.path for r in receiver.received] == ["/hook"]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_response_status) == ("pending", 302)
    assert delivery.last_error == "HTTP 302"


def test_only_the_first_4_kb_of_an_answer_are_read(user, endpoint, receiver):
    receiver.answers = [Answer(status=200, body=b"x" * 200_000)]
    finish(SessionFactory(user=user))
    deliver(endpoint)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.last_response_body == "x" * 4096


def test_an_answer_slower_than_the_time_limit_is_a_failure(user, endpoint, receiver, settings):
    settings.BO1_WEBHOOK_TIMEOUT = 0.5
    receiver.answers = [Answer(status=200, delay=3)]
    finish(SessionFactory(user=user))
    started = time.monotonic()
    deliver(endpoint)
    assert time.monotonic() - started < 2.5
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "no answer within 0.5 s"


def test_a_target_that_became_private_is_refused_at_delivery(user, endpoint, receiver, settings):
    finish(SessionFactory(user=user))
    settings.BO1_WEBHOOK_ALLOW_PRIVATE = False  # registered while allowed; refused when sending
    deliver(endpoint)
    assert receiver.received == []
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "127.0.0.1 is a loopback address" in delivery.last_error


def test_an_endpoint_failing_for_three_days_is_disabled_and_its_owner_sees_why(
    api, user, endpoint, receiver
):
    Endpoint.objects.filter(pk=endpoint["id"]).update(
        failing_since=timezone.now() - timedelta(days=3, minutes=1)
    )
    receiver.default = Answer(status=500)
    finish(SessionFactory(user=user))
    deliver(endpoint)
    shown = api.get(f"/api/v1/webhooks/{endpoint['id']}").json()
    assert shown["enabled"] is False
    assert shown["disabled_at"] is not None
    assert "Every delivery failed since" in shown["disabled_reason"]
    assert "3.0 days" in shown["disabled_reason"]
    assert "HTTP 500" in shown["disabled_reason"]
    finish(SessionFactory(user=user))
    assert Delivery.objects.count() == 1  # nothing more is recorded for a disabled endpoint
    time.sleep(0.1)
    assert deliver(endpoint) == 0


def test_after_a_rotation_both_secrets_verify_for_the_grace_period(api, user, endpoint, receiver):
    new = api.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret").json()["secret"]
    finish(SessionFactory(user=user))
    deliver(endpoint)
    (received,) = receiver.wait_for(1)
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    verified(received, new)
    verified(received, endpoint["secret"])
