"""Finding past sessions: full-text search (?q=), keyset pages (?cursor=) and date ranges."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions_app.cursors import SALT
from sessions_app.models import DeliberationSession, Status
from sessions_app.selectors import session_list_for_user
from sessions_app.services import session_soft_delete
from tests.factories import SessionFactory, UserFactory

SESSIONS = "/api/v1/sessions"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [s["id"] for s in response.json()["sessions"]]


# -- search ---------------------------------------------------------------------------------------


@pytest.fixture
def library(user, other_user):
    """A user's past meetings, plus sessions the search must never show."""
    made = {
        "cfo": SessionFactory(
            user=user, problem_statement="Should we be hiring a CFO before the Series B?",
            created_at=at(1),
        ),
        "office": SessionFactory(
            user=user, problem_statement="Should we open a second office in Lisbon?",
            synthesis_text="Hire locally first; a CFO is not needed for this.", created_at=at(2),
        ),
        "pricing": SessionFactory(
            user=user, problem_statement="How should we change pricing for enterprise plans?",
            problem_context={"notes": "The sales team wants annual contracts."}, created_at=at(3),
        ),
        "market": SessionFactory(
            user=user, problem_statement="Should we enter the German market next year?",
            final_recommendation="Enter the German market with a partner.", created_at=at(4),
        ),
    }  # fmt: skip
    deleted = SessionFactory(
        user=user, problem_statement="Should we hire a CFO or a COO?", created_at=at(5)
    )
    session_soft_delete(session_id=deleted.id)
    SessionFactory(user=other_user, problem_statement="Hiring a CFO for our bakery chain?")
    return made


def test_search_stems_english_so_hiring_finds_hire(api, library):
    response = api.get(SESSIONS, {"q": "hiring"})
    # Only the caller's own, not-deleted sessions; the problem itself outranks the synthesis.
    assert ids(response) == [library["cfo"].id, library["office"].id]
    assert response.json()["total"] == 2


def test_search_reads_the_context_the_synthesis_and_the_recommendation(api, library):
    assert ids(api.get(SESSIONS, {"q": "annual contracts"})) == [library["pricing"].id]
    assert ids(api.get(SESSIONS, {"q": "lisbon"})) == [library["office"].id]
    assert ids(api.get(SESSIONS, {"q": "partner"})) == [library["market"].id]


def test_search_speaks_websearch_syntax(api, library):
    assert ids(api.get(SESSIONS, {"q": '"german market"'})) == [library["market"].id]
    assert ids(api.get(SESSIONS, {"q": '"market german"'})) == []
    assert set(ids(api.get(SESSIONS, {"q": "lisbon or pricing"}))) == {
        library["office"].id,
        library["pricing"].id,
    }
    assert ids(api.get(SESSIONS, {"q": "cfo -lisbon"})) == [library["cfo"].id]


def test_equal_relevance_comes_newest_first(api, user):
    older = SessionFactory(
        user=user, problem_statement="Renew the warehouse lease?", created_at=at(1)
    )
    newer = SessionFactory(
        user=user, problem_statement="Renew the warehouse lease?", created_at=at(9)
    )
    assert ids(api.get(SESSIONS, {"q": "warehouse"})) == [newer.id, older.id]


def test_each_result_carries_a_highlighted_escaped_snippet(api, user):
    SessionFactory(
        user=user,
        problem_statement="Should we <b>hire</b> a CFO & a controller this year?",
        synthesis_text="Hire the CFO first.",
    )
    [result] = api.get(SESSIONS, {"q": "hire"}).json()["sessions"]
    snippet = result["snippet"]
    assert "<mark>hire</mark>" in snippet and "<mark>Hire</mark>" in snippet
    assert "&amp;" in snippet
    assert "<" not in snippet.replace("<mark>", "").replace("</mark>", "")
    assert "snippet" not in api.get(SESSIONS).json()["sessions"][0]


def test_a_match_only_in_the_context_is_highlighted_in_the_snippet(api, user):
    SessionFactory(
        user=user,
        problem_statement="Which way should the company grow next year?",
        problem_context={"notes": ["Two offers are on the table"], "region": {"name": "Lisbon"}},
    )
    [result] = api.get(SESSIONS, {"q": "lisbon"}).json()["sessions"]
    assert "<mark>Lisbon</mark>" in result["snippet"]
    assert "{" not in result["snippet"] and '"' not in result["snippet"]


@pytest.mark.parametrize("q", ["the and of", "!!! ...", "-", '""'])
def test_a_search_of_only_stop_words_or_punctuation_is_a_400(api, library, q):
    response = api.get(SESSIONS, {"q": q})
    assert response.status_code == 400
    assert "stop words or punctuation" in response.json()["q"][0]


def test_a_search_without_matches_is_an_empty_page_not_an_error(api, library):
    body = api.get(SESSIONS, {"q": "submarine"}).json()
    assert (body["sessions"], body["total"], body["next_cursor"]) == ([], 0, None)


def test_a_search_costs_one_ranking_query_with_its_total_and_one_for_the_page(
    user, library, django_assert_num_queries
):
    with django_assert_num_queries(2):
        page = session_list_for_user(user=user, q="cfo")
    assert page.total == 2


def test_a_search_never_shows_another_users_sessions_whatever_the_query(api, user, other_user):
    mine = SessionFactory(user=user, problem_statement="Should we open a bakery in Porto?")
    SessionFactory(user=other_user, problem_statement="Should we open a bakery in Porto?")
    SessionFactory(user=other_user, problem_statement="Should we sell the old van?")
    for q in ("bakery", '"open a bakery"', "bakery or van", "-van", "-bakery", "porto -van"):
        found = ids(api.get(SESSIONS, {"q": q}))
        assert set(found) <= {mine.id}, q
    assert ids(api.get(SESSIONS, {"q": "-van"})) == [mine.id]
    assert ids(api.get(SESSIONS, {"q": "-bakery"})) == []


def test_a_phrase_needs_its_words_next_to_each_other_and_in_order(api, user):
    together = SessionFactory(user=user, problem_statement="Is the retail business worth it?")
    SessionFactory(user=user, problem_statement="Our business in retail: keep it?")
    assert ids(api.get(SESSIONS, {"q": '"retail business"'})) == [together.id]
    assert api.get(SESSIONS, {"q": '"retail business"'}).json()["total"] == 1
    # Outside the phrase's negation, rows with both words apart still match.
    assert len(ids(api.get(SESSIONS, {"q": 'retail -"retail business"'}))) == 1


def test_a_plain_cursor_page_costs_what_the_first_page_costs(user, django_assert_num_queries):
    for m in range(30):
        SessionFactory(user=user, created_at=at(m))
    first = session_list_for_user(user=user, limit=10)
    # One page query and one read of the counters (no count of the rows), each time.
    with django_assert_num_queries(2):
        later = session_list_for_user(user=user, limit=10, cursor=first.next_cursor)
    assert later.total == 30


def test_the_search_follows_every_write(api, user, django_capture_on_commit_callbacks):
    created = api.post(
        SESSIONS, {"problem_statement": "What should we do about churn?"}, format="json"
    ).json()
    assert ids(api.get(SESSIONS, {"q": "retention"})) == []
    DeliberationSession.objects.filter(pk=created["id"]).update(
        synthesis_text="Invest in customer retention."
    )
    assert ids(api.get(SESSIONS, {"q": "retention"})) == [created["id"]]


def test_search_combines_with_status_and_dates(api, user):
    done = SessionFactory(user=user, problem_statement="Budget for travel?", status="completed",
                          created_at=at(10))  # fmt: skip
    SessionFactory(user=user, problem_statement="Budget for hardware?", created_at=at(20))
    SessionFactory(user=user, problem_statement="Budget for events?", status="completed",
                   created_at=at(30))  # fmt: skip
    response = api.get(
        SESSIONS, {"q": "budget", "status": "completed", "created_before": at(25).isoformat()}
    )
    assert ids(response) == [done.id]
    assert response.json()["total"] == 1


# -- cursor pages ---------------------------------------------------------------------------------


def page_through(api, params, limit):
    seen, cursor, pages = [], None, 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        body = api.get(SESSIONS, query).json()
        seen += [s["id"] for s in body["sessions"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


def test_cursor_pages_cover_every_session_once_even_within_one_instant(api, user):
    same = [SessionFactory(user=user, created_at=at(5)) for _ in range(5)]
    others = [SessionFactory(user=user, created_at=at(m)) for m in (1, 2, 8, 9)]
    seen, pages = page_through(api, {}, limit=2)
    expected = sorted(same + others, key=lambda s: (s.created_at, s.id), reverse=True)
    assert seen == [s.id for s in expected]
    assert pages == 5


def test_the_first_page_answers_a_cursor_and_a_cursor_page_answers_no_offset(api, user):
    for m in range(3):
        SessionFactory(user=user, created_at=at(m))
    first = api.get(SESSIONS, {"limit": 2}).json()
    assert first["next_cursor"] and first["offset"] == 0
    second = api.get(SESSIONS, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert (second["offset"], second["next_offset"], second["has_more"]) == (None, None, False)
    assert (second["next_cursor"], second["total"]) == (None, 3)


def test_sessions_created_or_deleted_between_pages_never_repeat_or_skip_one(api, user):
    existing = [SessionFactory(user=user, created_at=at(m)) for m in range(20)]
    newest_first = [s.id for s in reversed(existing)]
    body = api.get(SESSIONS, {"limit": 5}).json()
    seen = [s["id"] for s in body["sessions"]]
    deleted = set()
    turn = 0
    while body["next_cursor"]:
        turn += 1
        # Meanwhile: new sessions arrive at the top, and some not yet seen are deleted.
        SessionFactory(user=user, created_at=at(100 + turn))
        unseen = [i for i in newest_first if i not in seen and i not in deleted]
        if len(unseen) > 3:
            session_soft_delete(session_id=unseen[2])
            deleted.add(unseen[2])
        body = api.get(SESSIONS, {"limit": 5, "cursor": body["next_cursor"]}).json()
        seen += [s["id"] for s in body["sessions"]]
    assert len(seen) == len(set(seen)), "a session came twice"
    assert seen == [i for i in newest_first if i not in deleted], "a session was skipped"


def test_cursor_pages_of_a_search_follow_relevance_then_newest(api, user):
    for m in range(4):
        SessionFactory(user=user, problem_statement="Hire a designer?", created_at=at(m))
    for m in range(3):
        SessionFactory(user=user, problem_statement="Hire a designer? Hire two designers?",
                       created_at=at(m))  # fmt: skip
    everything = ids(api.get(SESSIONS, {"q": "designer hire", "limit": 100}))
    seen, pages = page_through(api, {"q": "designer hire"}, limit=2)
    assert seen == everything and len(seen) == 7 and pages == 4


def tamper(cursor: str) -> str:
    payload = signing.Signer(salt=SALT).unsign_object(cursor)
    payload["k"][1] = "bo1_00000000-0000-4000-8000-000000000000"
    return signing.Signer(salt=SALT, key="not-the-secret").sign_object(payload)


def test_a_tampered_cursor_is_a_400(api, user):
    for m in range(3):
        SessionFactory(user=user, created_at=at(m))
    cursor = api.get(SESSIONS, {"limit": 1}).json()["next_cursor"]
    for bad in (tamper(cursor), cursor[:-3] + "abc", "garbage", cursor + "x"):
        response = api.get(SESSIONS, {"limit": 1, "cursor": bad})
        assert response.status_code == 400, bad
        assert "cursor" in response.json()


def test_a_cursor_from_another_filter_or_user_is_a_400(api, other_api, user, other_user):
    for m in range(3):
        SessionFactory(user=user, created_at=at(m), status="completed")
    cursor = api.get(SESSIONS, {"limit": 1}).json()["next_cursor"]
    for params in (
        {"status": "completed"},
        {"q": "office"},
        {"created_after": at(-10).isoformat()},
    ):
        response = api.get(SESSIONS, {"limit": 1, "cursor": cursor, **params})
        assert response.status_code == 400, params
        assert "another filter" in response.json()["cursor"][0]
    assert other_api.get(SESSIONS, {"cursor": cursor}).status_code == 400
    # A different page size is the same filter.
    assert api.get(SESSIONS, {"limit": 2, "cursor": cursor}).status_code == 200


def test_cursor_and_offset_together_are_a_400(api, user):
    SessionFactory(user=user)
    SessionFactory(user=user)
    cursor = api.get(SESSIONS, {"limit": 1}).json()["next_cursor"]
    response = api.get(SESSIONS, {"cursor": cursor, "offset": 1})
    assert response.status_code == 400
    assert response.json() == {"cursor": ["Give either cursor or offset, not both."]}


# -- dates ----------------------------------------------------------------------------------------


def test_created_after_and_before_bound_the_list_and_combine_with_the_cursor(api, user):
    made = [SessionFactory(user=user, created_at=at(m), status="completed") for m in range(10)]
    params = {"created_after": at(2).isoformat(), "created_before": at(8).isoformat()}
    expected = [s.id for s in reversed(made[3:8])]
    assert ids(api.get(SESSIONS, params)) == expected
    assert api.get(SESSIONS, params).json()["total"] == 5
    seen, _ = page_through(api, {**params, "status": "completed"}, limit=2)
    assert seen == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
        ({"created_after": at(5).isoformat(), "created_before": at(1).isoformat()},
         "created_before"),
        ({"q": "x" * 501}, "q"),
    ],
)  # fmt: skip
def test_bad_dates_and_overlong_searches_are_a_400_naming_the_field(api, params, field):
    response = api.get(SESSIONS, params)
    assert response.status_code == 400
    assert field in response.json()


# -- the plans PostgreSQL chooses -----------------------------------------------------------------


@pytest.fixture
def crowd(transactional_db):
    """Enough rows that the planner's choices are the ones production sees: one user with many
    sessions among many users, and a word that few of them hold."""
    users = [UserFactory(username=f"crowd{n}") for n in range(40)]
    words = ["hiring", "pricing", "office", "market", "supplier", "budget", "lease", "pension"]
    DeliberationSession.objects.bulk_create(
        DeliberationSession(
            user=users[0] if n % 2 else users[1 + n % 39],
            problem_statement=(
                f"Should we decide on {words[n % 8]} and {words[(n // 8) % 8]}"
                f"{' after the merger' if n % 97 == 0 else ''}?"
            ),
            status=Status.COMPLETED,
            created_at=at(n),
        )
        for n in range(8000)
    )
    # As autovacuum leaves a live table: statistics, and the GIN index's own counts, current.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE sessions")
    return users


def plan_of(call) -> str:
    with CaptureQueriesContext(connection) as queries:
        call()
    page_sql = next(q["sql"] for q in queries if "ORDER BY" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {page_sql}")
        return json.dumps(cursor.fetchone()[0])


def test_explain_a_search_uses_the_owners_entries_of_the_gin_index(crowd):
    plan = plan_of(lambda: session_list_for_user(user=crowd[0], q="merger"))
    assert '"Index Name": "sessions_search_keys"' in plan
    # The index is asked for this owner's words only, not the word across every user.
    assert f"{crowd[0].pk}:merger" in plan
    assert "sessions_user_status" not in plan and "sessions_user_recent" not in plan


def test_explain_a_cursor_page_uses_the_keyset_index_from_the_cursor_on(crowd):
    user = crowd[1]  # about one session in eighty, as most users have
    first = session_list_for_user(user=user, limit=10)
    plan = plan_of(lambda: session_list_for_user(user=user, limit=10, cursor=first.next_cursor))
    assert '"Index Name": "sessions_user_recent"' in plan
    # The scan starts at the cursor (an index condition), it does not read and drop the rows
    # before it.
    assert "ROW(created_at, (id)::text) < ROW(" in plan.split('"Index Cond": ')[1].split('",')[0]
    assert '"Filter"' not in plan.split('"Index Name": "sessions_user_recent"')[1].split("}")[0]
