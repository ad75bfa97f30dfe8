"""The search document PostgreSQL keeps on every session row (a generated tsvector)."""

from django.db import connection

from sessions_app.models import DeliberationSession
from tests.factories import SessionFactory


def matches(session_id: str, query: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_vector @@ websearch_to_tsquery('english', %s) FROM sessions "
            "WHERE id = %s",
            [query, session_id],
        )
        return bool(cursor.fetchone()[0])


def test_the_document_is_written_with_the_row_and_stems_english(user):
    session = SessionFactory(user=user, problem_statement="Should we be hiring a CFO this year?")
    assert matches(session.id, "hire")
    assert matches(session.id, "cfo")
    assert not matches(session.id, "marketing")


def test_an_update_of_any_searched_column_updates_the_document(user):
    session = SessionFactory(user=user, problem_statement="Should we move the office?")
    assert not matches(session.id, "lisbon")
    DeliberationSession.objects.filter(pk=session.id).update(synthesis_text="Move to Lisbon.")
    assert matches(session.id, "lisbon")
    DeliberationSession.objects.filter(pk=session.id).update(
        final_recommendation="Sign the Porto lease."
    )
    assert matches(session.id, "porto")


def test_the_context_contributes_its_string_values_not_its_keys(user):
    session = SessionFactory(
        user=user,
        problem_statement="Which supplier should we choose?",
        problem_context={"budget_owner": "Marguerite", "notes": ["prefers rail freight"]},
    )
    assert matches(session.id, "marguerite")
    assert matches(session.id, "freight")
    assert not matches(session.id, "budget_owner")


def test_the_problem_statement_weighs_more_than_the_synthesis(user):
    in_problem = SessionFactory(user=user, problem_statement="Should we acquire the bakery?")
    in_synthesis = SessionFactory(
        user=user, problem_statement="What should we do next year?", synthesis_text="A bakery."
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM sessions WHERE id IN (%s, %s) "
            "ORDER BY ts_rank(search_vector, websearch_to_tsquery('english', 'bakery')) DESC",
            [in_problem.id, in_synthesis.id],
        )
        assert [row[0] for row in cursor.fetchall()] == [in_problem.id, in_synthesis.id]


def test_a_new_session_is_not_under_legal_hold(user):
    session = SessionFactory(user=user)
    session.refresh_from_db()
    assert session.legal_hold is False
    assert session.legal_hold_by is None
    assert session.legal_hold_at is None
