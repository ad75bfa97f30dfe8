"""A create retried with the same Idempotency-Key returns the same session and creates nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from sessions_app.models import DeliberationSession
from tests.conftest import token_client

PROBLEM = "Should we sunset the legacy mobile app at the end of the quarter?"


def create(client, key: str | None, problem: str = PROBLEM):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/api/v1/sessions", {"problem_statement": problem}, format="json", headers=headers
    )


@pytest.mark.django_db
def test_a_retried_create_returns_the_same_session_and_creates_nothing_new(api, user, caplog):
    first = create(api, "order-7f3a")
    assert first.status_code == 201
    for _ in range(3):
        again = create(api, "order-7f3a")
        assert again.status_code == 200
        assert again.json() == first.json()
    assert DeliberationSession.objects.filter(user=user).count() == 1
    assert caplog.text.count(f"Created session: {first.json()['id']}") <= 1


@pytest.mark.django_db
def test_the_key_names_the_request_not_its_body(api, user):
    first = create(api, "order-7f3a")
    changed = create(api, "order-7f3a", "A different problem statement entirely, retried.")
    assert changed.status_code == 200 and changed.json()["id"] == first.json()["id"]
    assert DeliberationSession.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_keys_belong_to_their_user_and_no_key_means_a_new_session_each_time(
    api, other_api, user, other_user
):
    mine = create(api, "shared-key").json()["id"]
    theirs = create(other_api, "shared-key")
    assert theirs.status_code == 201 and theirs.json()["id"] != mine
    assert create(api, None).status_code == 201
    assert create(api, None).status_code == 201
    assert DeliberationSession.objects.filter(user=user).count() == 3
    assert DeliberationSession.objects.filter(user=other_user).count() == 1


@pytest.mark.django_db
def test_an_overlong_key_is_refused_with_400(api):
    response = create(api, "k" * 256)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()
    assert not DeliberationSession.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("forced", [False, True], ids=["natural-race", "both-pass-the-lookup"])
def test_two_concurrent_retries_with_one_key_create_one_session(user, monkeypatch, forced):
    clients = [token_client(user), token_client(user)]
    start = threading.Barrier(len(clients))
    if forced:
        # Both requests find no session for the key, then both insert: the unique constraint
        # must make one of them answer with the other's session.
        before_insert = threading.Barrier(len(clients))
        save = DeliberationSession.save

        def save_together(self, *args, **kwargs):
            before_insert.wait(timeout=10)
            return save(self, *args, **kwargs)

        monkeypatch.setattr(DeliberationSession, "save", save_together)
    answers: list = [None] * len(clients)

    def post(index: int) -> None:
        try:
            start.wait(timeout=10)
            answers[index] = create(clients[index], "concurrent")
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(a.status_code for a in answers) == [200, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert DeliberationSession.objects.filter(user=user).count() == 1
