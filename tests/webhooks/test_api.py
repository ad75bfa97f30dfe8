"""The webhooks API: endpoints per user, secrets shown once, another user's is 404, SSRF refused."""

import base64

import pytest

from sessions_app.models import Status
from sessions_app.services import session_transition
from tests.factories import SessionFactory
from webhooks.addresses import AddressNotAllowed, address_refusal, check_url
from webhooks.models import Delivery, Endpoint, EventType

pytestmark = pytest.mark.django_db


def test_create_answers_201_with_a_standard_webhooks_secret_shown_only_then(api, receiver):
    created = api.post(
        "/api/v1/webhooks",
        {"url": receiver.url, "description": "Slack bot"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) >= {"id", "url", "events", "description", "secret", "created_at"}
    assert body["url"] == receiver.url
    assert body["events"] == sorted(EventType.values)  # all by default
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24

    detail = api.get(f"/api/v1/webhooks/{body['id']}")
    assert detail.status_code == 200
    assert "secret" not in detail.json()
    listed = api.get("/api/v1/webhooks").json()
    assert listed["count"] == 1
    assert "secret" not in listed["webhooks"][0]
    assert body["secret"] not in detail.content.decode() + str(listed)


def test_events_can_be_chosen_and_unknown_ones_are_a_400_on_the_field(api, receiver):
    chosen = api.post(
        "/api/v1/webhooks",
        {"url": receiver.url, "events": ["session.completed", "session.paused"]},
        format="json",
    )
    assert chosen.status_code == 201
    assert chosen.json()["events"] == ["session.completed", "session.paused"]
    bad = api.post(
        "/api/v1/webhooks", {"url": receiver.url, "events": ["session.exploded"]}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["events"] == ['Item 0: "session.exploded" is not a valid choice.']
    empty = api.post("/api/v1/webhooks", {"url": receiver.url, "events": []}, format="json")
    assert empty.status_code == 400
    assert "events" in empty.json()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "not a url",
        "javascript:alert(1)",
        "http://user:pw@example.com/",
        "http://[::1]/hook",  # IPv6 literals are not taken: give a host name
        " https://example.com/hook",
    ],
)
def test_only_plain_http_and_https_urls_are_accepted(api, url):
    answer = api.post("/api/v1/webhooks", {"url": url}, format="json")
    assert answer.status_code == 400
    assert "url" in answer.json()
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/hook",  # 127.0.0.1 written as one number
    ],
)
def test_registration_refuses_loopback_private_link_local_and_multicast_targets(api, settings, url):
    settings.BO1_WEBHOOK_ALLOW_PRIVATE = False
    answer = api.post("/api/v1/webhooks", {"url": url}, format="json")
    assert answer.status_code == 400, answer.content
    assert "address" in answer.json()["url"][0]
    assert not Endpoint.objects.exists()


def test_another_users_endpoint_is_404_everywhere_and_left_alone(api, other_api, endpoint):
    base = f"/api/v1/webhooks/{endpoint['id']}"
    assert other_api.get(base).status_code == 404
    assert other_api.get(f"{base}/deliveries").status_code == 404
    assert other_api.post(f"{base}/rotate-secret").status_code == 404
    assert other_api.patch(base, {"description": "x"}, format="json").status_code == 404
    assert other_api.delete(base).status_code == 404
    assert other_api.get("/api/v1/webhooks").json() == {"webhooks": [], "count": 0}
    assert Endpoint.objects.get(pk=endpoint["id"]).secret == endpoint["secret"]


def test_rotate_secret_shows_the_new_one_once_and_the_old_one_still_signs_for_a_while(
    api, endpoint
):
    rotated = api.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != endpoint["secret"]
    stored = Endpoint.objects.get(pk=endpoint["id"])
    assert stored.signing_secrets() == [new, endpoint["secret"]]


def test_delete_removes_the_endpoint_and_its_deliveries(api, endpoint, user):
    session = SessionFactory(user=user)
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED):
        session_transition(session_id=session.id, to=status)
    assert Delivery.objects.count() == 1
    assert api.delete(f"/api/v1/webhooks/{endpoint['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{endpoint['id']}").status_code == 404
    assert not Delivery.objects.exists()


def test_deliveries_are_listed_newest_first_with_their_state(api, endpoint, user):
    first, second = SessionFactory(user=user), SessionFactory(user=user)
    for session in (first, second):
        for status in (Status.QUEUED, Status.RUNNING, Status.FAILED):
            session_transition(session_id=session.id, to=status)
    answer = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries")
    assert answer.status_code == 200
    deliveries = answer.json()["deliveries"]
    assert [d["session_id"] for d in deliveries] == [second.id, first.id]
    assert set(deliveries[0]) >= {
        "event_type", "session_id", "attempts", "last_response_status", "next_attempt_at",
        "delivered_at", "status", "webhook_id",
    }  # fmt: skip
    assert deliveries[0]["event_type"] == "session.failed"
    assert deliveries[0]["attempts"] == 0
    assert deliveries[0]["next_attempt_at"] is not None
    bad = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries?limit=0")
    assert bad.status_code == 400 and "limit" in bad.json()


def test_patch_changes_events_and_enables_a_disabled_endpoint(api, endpoint):
    stored = Endpoint.objects.get(pk=endpoint["id"])
    stored.enabled = False
    stored.disabled_reason = "Every delivery failed since ..."
    stored.save()
    changed = api.patch(
        f"/api/v1/webhooks/{endpoint['id']}",
        {"enabled": True, "events": ["session.failed"]},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["enabled"] is True
    assert changed.json()["disabled_reason"] == ""
    assert changed.json()["events"] == ["session.failed"]
    unchanged = api.patch(f"/api/v1/webhooks/{endpoint['id']}", {}, format="json")
    assert unchanged.status_code == 200
    assert unchanged.json()["events"] == ["session.failed"]


def test_a_user_has_at_most_twenty_endpoints(api, receiver):
    for _ in range(20):
        assert api.post("/api/v1/webhooks", {"url": receiver.url}, format="json").status_code == 201
    over = api.post("/api/v1/webhooks", {"url": receiver.url}, format="json")
    assert over.status_code == 400
    assert "At most 20" in over.json()["url"][0]


def test_webhooks_need_credentials(anon):
    assert anon.get("/api/v1/webhooks").status_code == 401
    assert (
        anon.post("/api/v1/webhooks", {"url": "https://example.com"}, format="json").status_code
        == 401
    )


@pytest.mark.parametrize(
    "address", ["::1", "::ffff:127.0.0.1", "fe80::1", "fd00::1", "ff02::1", "100.64.0.1"]
)
def test_the_address_check_refuses_ipv6_and_shared_ranges_too(address):
    assert address_refusal(address) is not None


def test_the_address_check_lets_public_addresses_through():
    assert address_refusal("93.184.216.34") is None
    assert address_refusal("2606:2800:220:1:248:1893:25c8:1946") is None


def test_a_name_that_resolves_to_one_private_address_among_public_ones_is_refused(
    settings, monkeypatch
):
    settings.BO1_WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(
        "webhooks.addresses.lookup", lambda host, port: ["93.184.216.34", "10.1.2.3"]
    )
    with pytest.raises(AddressNotAllowed, match=r"10\.1\.2\.3 is a private address"):
        check_url("https://hooks.example.com/in")
