"""The operators' admin: list, filters, search, read-only detail with events, actions, speed."""

from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:sessions_app_deliberationsession_changelist")


def change_url(session):
    # Quoted as the admin's own links are: unquoted, "bo1_23..." reads as "bo1#..." (not found).
    return reverse("admin:sessions_app_deliberationsession_change", args=[quote(session.pk)])


def listed_ids(response):
    return {obj.pk for obj in response.context["cl"].result_list}


def test_the_changelist_shows_the_operator_columns(admin_client, user):
    session = SessionFactory(user=user, status=Status.RUNNING, phase="discussion", round_number=2)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    headers = [h["text"].lower() for h in response.context["result_headers"]]
    assert headers[1:] == ["id", "user", "status", "phase", "round number", "total cost",
                           "created at"]  # fmt: skip
    html = response.content.decode()
    assert session.id in html and "alice" in html and "discussion" in html


def test_the_changelist_filters_on_status_phase_and_date(admin_client, user):
    filters = [f.title for f in admin_client.get(CHANGELIST).context["cl"].filter_specs]
    assert filters == ["status", "phase", "legal hold", "created at"]
    running = SessionFactory(user=user, status=Status.RUNNING, phase="voting")
    done = SessionFactory(user=user, status=Status.COMPLETED, phase="complete")
    assert listed_ids(admin_client.get(CHANGELIST, {"status__exact": "running"})) == {running.pk}
    assert listed_ids(admin_client.get(CHANGELIST, {"phase__exact": "complete"})) == {done.pk}
    SessionFactory(user=user, created_at=timezone.now() - timedelta(days=60))
    # The "Past 7 days" link of the date filter, as the page renders it.
    date_filter = admin_client.get(CHANGELIST).context["cl"].filter_specs[3]
    params = dict(date_filter.links)["Past 7 days"]
    assert listed_ids(admin_client.get(CHANGELIST, params)) == {running.pk, done.pk}


def test_search_finds_by_id_problem_text_and_username(admin_client, user):
    bob = UserFactory(username="bob")
    lisbon = SessionFactory(user=user, problem_statement="Should we move the team to Lisbon?")
    berlin = SessionFactory(user=bob, problem_statement="Should we hire in Berlin this year?")
    assert listed_ids(admin_client.get(CHANGELIST, {"q": lisbon.id})) == {lisbon.pk}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "lisbon"})) == {lisbon.pk}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "bob"})) == {berlin.pk}


def test_the_change_page_is_read_only_with_the_synthesis_and_the_last_100_events(
    admin_client, user
):
    session = SessionFactory(
        user=user, status=Status.COMPLETED, synthesis_text="Executive summary: go to Lisbon."
    )
    SessionEvent.objects.bulk_create(
        SessionEvent(session=session, sequence=n, event_type=f"event_{n:03d}")
        for n in range(1, 121)
    )
    response = admin_client.get(change_url(session))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Executive summary: go to Lisbon." in html
    assert 'name="synthesis_text"' not in html  # shown, not editable
    assert 'name="_save"' not in html
    assert "Last 100 events" in html
    assert "event_021" in html and "event_120" in html
    assert "event_020" not in html


def test_refresh_hot_cache_action_rewrites_the_redis_entries(admin_client, user):
    sessions = [SessionFactory(user=user, status=Status.RUNNING) for _ in range(2)]
    response = admin_client.post(
        CHANGELIST,
        {"action": "refresh_hot_cache", "_selected_action": [s.pk for s in sessions]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Refreshed 2 hot entries." in response.content.decode()
    for session in sessions:
        assert SessionCache.get(session.id)["status"] == Status.RUNNING


def test_mark_deleted_action_soft_deletes_and_kills_unfinished_sessions(admin_client, user):
    running = SessionFactory(user=user, status=Status.RUNNING)
    done = SessionFactory(user=user, status=Status.COMPLETED)
    response = admin_client.post(
        CHANGELIST,
        {"action": "mark_deleted", "_selected_action": [running.pk, done.pk]},
        follow=True,
    )
    assert "Marked 2 sessions deleted." in response.content.decode()
    assert set(DeliberationSession.objects.values_list("status", flat=True).filter(
        pk__in=[running.pk, done.pk])) == {Status.DELETED}  # fmt: skip
    assert SessionEvent.objects.filter(session=running, event_type="killed").exists()
    assert not SessionEvent.objects.filter(session=done, event_type="killed").exists()


def test_operators_cannot_add_edit_or_hard_delete_sessions(admin_client, user):
    session = SessionFactory(user=user)
    add = reverse("admin:sessions_app_deliberationsession_add")
    assert admin_client.get(add).status_code == 403
    delete = reverse("admin:sessions_app_deliberationsession_delete", args=[session.pk])
    assert admin_client.get(delete).status_code == 403
    response = admin_client.post(change_url(session), {"problem_statement": "changed text here"})
    assert response.status_code == 403
    assert DeliberationSession.objects.get(pk=session.pk).problem_statement != "changed text here"


def changelist_queries(client):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(CHANGELIST).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_the_changelist_query_count_does_not_grow_with_rows(admin_client):
    users = [UserFactory() for _ in range(5)]
    for n in range(3):
        SessionFactory(user=users[n])
    few = changelist_queries(admin_client)
    for n in range(60):  # more than a page: the list now pages
        SessionFactory(user=users[n % 5], checkpoint={"state": "x" * 1000})
    many = changelist_queries(admin_client)
    assert len(many) == len(few)
    [page] = [sql for sql in many if 'FROM "sessions" INNER JOIN "auth_user"' in sql]
    assert "LIMIT 50" in page  # the user comes in the same query, one page of rows
    assert '"sessions"."checkpoint"' not in page  # large columns stay in the database


def test_the_changelist_never_counts_the_whole_table(admin_client, user):
    SessionFactory(user=user)
    for sql in changelist_queries(admin_client):
        if "COUNT(" in sql.upper() and '"sessions"' in sql:
            assert "LIMIT" in sql.upper()  # a capped count, never a full scan


def test_non_staff_users_are_sent_to_the_login_page(client, user):
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
