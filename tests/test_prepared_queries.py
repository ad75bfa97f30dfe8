"""PreparedQuery: an ORM queryset compiled once answers exactly as the ORM does, every run."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from bo1site.serving.db.prepared import Param, PreparedQuery
from sessions_app.models import DeliberationSession, SessionCountChange, Status
from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


def prepared_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def test_model_rows_with_a_related_object_equal_the_orms(user):
    token = Token.objects.create(user=user)
    query = PreparedQuery(
        "bo1_test_token",
        lambda: Token.objects.select_related("user").filter(key=Param("key")),
    )
    for _ in range(3):  # compiled once, run thrice
        found = query.first(key=token.key)
        orm = Token.objects.select_related("user").get(key=token.key)
        assert (found.key, found.created, found.user_id) == (orm.key, orm.created, orm.user_id)
        assert found.user.__dict__.keys() == orm.user.__dict__.keys()
        assert found.user.username == "alice" and found.user.password == orm.user.password
        assert found._state.adding is False and found._state.db == "default"
    assert query.first(key="0" * 40) is None
    assert "bo1_test_token" in prepared_names()


def test_deferred_fields_and_converters_work_as_in_the_orm(user):
    session = SessionFactory(user=user, problem_context={"budget": 2}, total_cost=Decimal("1.5"))
    query = PreparedQuery(
        "bo1_test_session",
        lambda: DeliberationSession.objects.defer("checkpoint").filter(pk=Param("pk")),
    )
    found = query.first(pk=session.pk)
    assert found.problem_context == {"budget": 2}  # the JSONField's converter ran
    assert found.total_cost == Decimal("1.5")
    assert "checkpoint" in found.get_deferred_fields()


def test_values_pages_and_flat_values_are_bound_per_run(user, other_user):
    mine = [SessionFactory(user=user) for _ in range(5)]
    SessionFactory(user=other_user)
    page = PreparedQuery(
        "bo1_test_page",
        lambda: (
            DeliberationSession.objects.filter(user_id=Param("user_id"))
            .order_by("-created_at", "-id")
            .values_list("id", "status")
        ),
        paginated=True,
        prepare=False,
    )
    newest_first = [s.id for s in reversed(mine)]
    assert page.fetch(user_id=user.pk, limit=2, offset=0) == [
        (i, Status.CREATED) for i in newest_first[:2]
    ]
    assert [r[0] for r in page.fetch(user_id=user.pk, limit=10, offset=3)] == newest_first[3:]
    assert "bo1_test_page" not in prepared_names()  # planned for its values on every run
    total = PreparedQuery(
        "bo1_test_total",
        lambda: (
            SessionCountChange.objects.filter(user_id=Param("user_id"))
            .values("user_id")
            .annotate(total=Sum("delta"))
            .values_list("total", flat=True)
        ),
    )
    assert total.fetch(user_id=user.pk) == [5]
    assert total.fetch(user_id=UserFactory().pk) == []


def test_a_prepared_query_is_one_query_and_can_be_switched_off(user, settings):
    session = SessionFactory(user=user)
    query = PreparedQuery(
        "bo1_test_switch",
        lambda: DeliberationSession.objects.filter(pk=Param("pk")).values_list("id"),
    )
    with CaptureQueriesContext(connection) as captured:
        assert query.fetch(pk=session.pk) == [(session.pk,)]
    assert [q["sql"] for q in captured.captured_queries] == [
        f"EXECUTE bo1_test_switch('{session.pk}')"
    ]
    settings.DATABASE_PREPARED_STATEMENTS = False
    with CaptureQueriesContext(connection) as captured:
        assert query.fetch(pk=session.pk) == [(session.pk,)]
    assert captured.captured_queries[0]["sql"].startswith("SELECT")


def test_a_sliced_queryset_is_refused():
    query = PreparedQuery("bo1_test_sliced", lambda: DeliberationSession.objects.all()[:5])
    with pytest.raises(ValueError, match="paginated"):
        query.fetch()


def test_an_insert_writes_the_row_save_would_write(user):
    from bo1site.serving.db.prepared import PreparedInsert

    insert = PreparedInsert("bo1_test_insert", DeliberationSession)
    for n in range(2):
        session = DeliberationSession(
            user=user, problem_statement=f"Question {n}?", problem_context={"n": n}
        )
        insert.insert(session)
        assert session._state.adding is False
        stored = DeliberationSession.objects.get(pk=session.pk)
        assert (stored.problem_context, stored.status, stored.created_at) == (
            {"n": n},
            Status.CREATED,
            session.created_at,
        )
    assert "bo1_test_insert" in prepared_names()
