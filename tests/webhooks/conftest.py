"""Fixtures of the webhook tests: a loopback receiver and an endpoint registered for it."""

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    hook = Receiver().start()
    yield hook
    hook.stop()


@pytest.fixture
def endpoint(api, receiver):
    """The caller's endpoint for the receiver, with its secret (shown only at creation)."""
    created = api.post("/api/v1/webhooks", {"url": receiver.url}, format="json")
    assert created.status_code == 201, created.content
    return created.json()
