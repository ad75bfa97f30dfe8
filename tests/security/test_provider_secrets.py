"""Provider keys never leave the worker: not in events, errors, logs, Redis, the API or the admin.

A real worker runs a deliberation against a local fake of the provider's API that refuses the
key with a 401 whose message echoes the key back, as some real APIs do.
"""

from __future__ import annotations

import json
import secrets

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from rest_framework.test import APIClient

from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.deliberation.fake_llm import FakeLLMServer
from tests.deliberation.test_worker import create_and_start, row, wait_until
from tests.factories import UserFactory
from tests.faults.wiring import REAL_BROKER_URL
from tests.processes import start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROVIDERS = {
    "anthropic": ("sk-ant-test-SECRET", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "url"),
    "openai": ("sk-test-SECRET", "OPENAI_API_KEY", "OPENAI_BASE_URL", "openai_url"),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_refused_provider_key_appears_nowhere(provider, api, direct_redis):
    prefix, key_variable, url_variable, url_attribute = PROVIDERS[provider]
    key = f"{prefix}-{secrets.token_hex(16)}"
    with FakeLLMServer(mode="auth_error") as fake:
        worker = start_worker(
            name=f"{provider}-secrets-worker",
            BO1_LLM_PROVIDER=provider,
            BO1_LLM_MAX_RETRIES="0",
            CELERY_BROKER_URL=REAL_BROKER_URL,
            **{key_variable: key, url_variable: getattr(fake, url_attribute)},
        )
        try:
            session_id = create_and_start(api, max_rounds=1)
            wait_until(lambda: row(session_id).status == Status.FAILED, what="failed on 401")
        finally:
            worker.stop()
        assert fake.requests, "the provider was never called"
        sent = fake.requests[0].headers
        assert key in (sent.get("x-api-key", ""), sent.get("authorization", "").split(" ")[-1])

    session = DeliberationSession.objects.get(pk=session_id)
    assert session.error["code"] == "auth"
    assert "401" in session.error["message"]

    places = {
        "error": json.dumps(session.error),
        "events": json.dumps(list(SessionEvent.objects.filter(session=session).values("data"))),
        "worker log": worker.log(),
        "redis": " ".join(
            repr(direct_redis.dump(k)) for k in direct_redis.scan_iter(match=f"*{session_id}*")
        ),
        "api detail": api.get(f"/api/v1/sessions/{session_id}").content.decode(),
        "api events": api.get(f"/api/v1/sessions/{session_id}/events").content.decode(),
        "api export": api.get(f"/api/v1/sessions/{session_id}/export?format=json").content.decode(),
    }
    staff = APIClient()
    staff.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    # The admin's own links quote the id ("bo1_23..." would otherwise read as "bo1#...").
    change_url = reverse("admin:sessions_app_deliberationsession_change", args=[quote(session_id)])
    admin_page = staff.get(change_url)
    assert admin_page.status_code == 200
    places["admin"] = admin_page.content.decode()
    assert "Incorrect API key provided" in places["error"]  # the echo arrived, redacted
    for place, text in places.items():
        assert key not in text, f"the provider key leaked into the {place}"
        assert key[-12:] not in text, f"part of the provider key leaked into the {place}"
