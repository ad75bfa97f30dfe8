"""The admin shows endpoints and deliveries without ever showing a secret, and redelivers."""

import pytest
from django.urls import reverse

from sessions_app.models import Status
from sessions_app.services import session_transition
from tests.factories import SessionFactory
from webhooks.delivery import endpoint_deliver_due
from webhooks.models import Delivery, DeliveryStatus, Endpoint

pytestmark = pytest.mark.django_db


def completed_delivery(user, endpoint):
    session = SessionFactory(user=user)
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED):
        session_transition(session_id=session.id, to=status)
    endpoint_deliver_due(endpoint_id=endpoint["id"])
    return Delivery.objects.get(session_id=session.id)


def test_no_admin_page_shows_an_endpoints_secret(admin_client, api, user, endpoint):
    api.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret")  # now a previous secret too
    stored = Endpoint.objects.get(pk=endpoint["id"])
    delivery = completed_delivery(user, endpoint)
    pages = [
        reverse("admin:webhooks_endpoint_changelist"),
        reverse("admin:webhooks_endpoint_change", args=[stored.pk]),
        reverse("admin:webhooks_delivery_changelist"),
        reverse("admin:webhooks_delivery_change", args=[delivery.pk]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for secret in (stored.secret, stored.previous_secret):
            assert secret not in html, page
            assert secret.removeprefix("whsec_")[:16] not in html, page


def test_the_redeliver_action_sends_a_delivery_again_with_its_webhook_id(
    admin_client, user, endpoint, receiver
):
    delivery = completed_delivery(user, endpoint)
    assert delivery.status == DeliveryStatus.DELIVERED
    response = admin_client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 deliveries queued again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    endpoint_deliver_due(endpoint_id=endpoint["id"])
    first, again = receiver.wait_for(2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery.webhook_id
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
