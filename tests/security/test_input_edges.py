"""Inputs at the edges of what Python parses: clear 4xx answers, never a 500."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from sessions_app.models import Status
from sessions_app.services import NewEvent, session_transition
from tests.factories import SessionFactory

# The stream reads PostgreSQL from threads of its own, which see committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)


async def read_all(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.fixture
def finished(user):
    session = SessionFactory(user=user)
    session_transition(session_id=session.id, to=Status.QUEUED, events=[NewEvent("queued")])
    session_transition(session_id=session.id, to=Status.RUNNING)
    session_transition(session_id=session.id, to=Status.COMPLETED, events=[NewEvent("complete")])
    return session


@pytest.mark.parametrize("after", ["²", "٣", "-1", "1.5", "x"])
def test_a_stream_position_that_is_not_a_plain_number_is_400(api, finished, after):
    # "²".isdigit() is true in Python, and int("²") raises: this was a 500.
    response = api.get(f"/api/v1/sessions/{finished.id}/stream", {"after": after})
    assert response.status_code == 400
    assert "after" in response.json()


def test_a_bad_after_is_refused_even_beside_a_last_event_id(api, finished):
    response = api.get(
        f"/api/v1/sessions/{finished.id}/stream", {"after": "-5"}, HTTP_LAST_EVENT_ID="1"
    )
    assert response.status_code == 400


def test_a_last_event_id_that_is_not_a_plain_number_is_ignored(api, finished):
    response = api.get(f"/api/v1/sessions/{finished.id}/stream", HTTP_LAST_EVENT_ID="²")
    assert response.status_code == 200
    body = async_to_sync(read_all)(response).decode()
    assert "id: 1\n" in body and "id: 2\n" in body
