"""Guards for the benchmark's budgets: fixed query counts per request, and indexed list queries."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sessions_app import services
from sessions_app.models import DeliberationSession, SessionEvent, Status
from tests.factories import SessionFactory, UserFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/sessions"


def make_sessions(user, count):
    return [SessionFactory(user=user) for _ in range(count)]


def add_events(session, count):
    SessionEvent.objects.bulk_create(
        SessionEvent(session=session, sequence=n, event_type="contribution", data={"n": n})
        for n in range(1, count + 1)
    )
    DeliberationSession.objects.filter(pk=session.pk).update(last_sequence=count)


def queries_for(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


# Token authentication, the page and the count: the same three queries for 1 row or 50.
def test_list_runs_three_queries_whatever_the_page_size(api, user, django_assert_num_queries):
    make_sessions(user, 50)
    for limit in (1, 20, 50):
        with django_assert_num_queries(3):
            response = api.get(f"{SESSIONS}?limit={limit}")
        assert len(response.json()["sessions"]) == limit
        assert response.json()["total"] == 50


def test_list_with_a_status_filter_runs_three_queries(api, user, django_assert_num_queries):
    make_sessions(user, 30)
    with django_assert_num_queries(3):
        response = api.get(f"{SESSIONS}?status=created&limit=25")
    assert response.json()["total"] == 30


def test_detail_from_redis_runs_only_the_token_lookup(api, user, django_assert_num_queries):
    session = SessionFactory(user=user)
    api.get(f"{SESSIONS}/{session.id}")  # a miss: read from PostgreSQL, written to Redis
    with django_assert_num_queries(1):
        response = api.get(f"{SESSIONS}/{session.id}")
    assert response.json()["id"] == session.id


def test_detail_after_a_cache_miss_runs_two_queries(api, user, clean_redis):
    small, large = SessionFactory(user=user), SessionFactory(user=user)
    add_events(large, 40)
    clean_redis.flushdb()
    assert queries_for(api, f"{SESSIONS}/{small.id}") == queries_for(api, f"{SESSIONS}/{large.id}")
    clean_redis.flushdb()
    assert queries_for(api, f"{SESSIONS}/{small.id}") == 2


def test_events_query_count_does_not_grow_with_the_transcript(api, user):
    short, long = SessionFactory(user=user), SessionFactory(user=user)
    add_events(short, 2)
    add_events(long, 60)
    assert queries_for(api, f"{SESSIONS}/{short.id}/events") == queries_for(
        api, f"{SESSIONS}/{long.id}/events"
    )
    assert queries_for(api, f"{SESSIONS}/{long.id}/events") == 3


# --- the list's query plans on a table big enough for the planner to care -----------------------

SEED_SQL = """
INSERT INTO sessions (
    id, user_id, problem_statement, problem_context, max_rounds, status, status_changed_at,
    pause_reason, phase, round_number, personas, contribution_count, clarification_question,
    total_cost, total_tokens, costs_by_phase, synthesis_text, final_recommendation,
    last_sequence, created_at, updated_at
)
SELECT 'bo1_' || gen_random_uuid(),
       CASE WHEN i %% 50 = 0 THEN %(hot)s ELSE (%(others)s::int[])[1 + i %% %(n_others)s] END,
       'Should we expand the business in year ' || i || '?', '{}', 6,
       (ARRAY['completed', 'completed', 'completed', 'failed', 'deleted', 'created', 'paused'])
           [1 + i %% 7],
       now(), '', 'complete', 0, '[]', 0, '', 0, 0, '{}', '', '', 0,
       now() - i * interval '1 minute', now()
FROM generate_series(1, %(rows)s) AS i
"""


def executed_statement(sql):
    """The SQL a captured query ran: for `EXECUTE name(...)`, the statement prepared as `name`."""
    if not sql.startswith("EXECUTE "):
        return sql
    name = sql.split()[1].split("(")[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [name])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "plain"])
def test_a_progress_write_leaves_the_checkpoint_out_of_its_locked_read(user, settings, prepared):
    """The checkpoint grows with the transcript; each engine step writes it but never reads it."""
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    session = SessionFactory(user=user, status=Status.RUNNING, checkpoint={"steps": ["x" * 1000]})
    with CaptureQueriesContext(connection) as captured:
        services.session_record_progress(
            session_id=session.id,
            events=[services.NewEvent("contribution", {"content": "Demand first."})],
            fields={"checkpoint": {"steps": ["x" * 1000, "y"]}},
        )
    statements = [
        executed_statement(q["sql"])
        for q in captured.captured_queries
        if "SAVEPOINT" not in q["sql"]  # the test's own transaction nests this one
    ]
    locked = [sql for sql in statements if "FOR UPDATE" in sql]
    assert len(locked) == 1 and '"checkpoint"' not in locked[0], statements
    assert len(statements) == 3  # the locked read, the event, the row's update
    session.refresh_from_db()
    assert session.checkpoint == {"steps": ["x" * 1000, "y"]}
    assert session.last_sequence == 1


@pytest.fixture
def seeded_table():
    """20,000 sessions over 101 users, the measured one owning 400 (2%); statistics up to date.

    As in production, one user's sessions are a small share of the table, spread across it.
    """
    hot = UserFactory(username="guard_hot")
    others = [UserFactory(username=f"guard_{n}").pk for n in range(100)]
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL, {"hot": hot.pk, "others": others, "n_others": len(others), "rows": 20_000}
        )
        cursor.execute("ANALYZE sessions")
        cursor.execute("ANALYZE session_counts")
    return hot


def token_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def list_queries(client, url):
    """The SQL the list endpoint ran, with its parameters bound."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return [q["sql"] for q in captured.captured_queries]


def statement(queries, name):
    """The captured run of a prepared statement (`EXECUTE name(...)`): EXPLAIN shows the plan
    PostgreSQL uses for it, generic or custom."""
    return next(q for q in queries if q.startswith(f"EXECUTE {name}("))


def page_query(queries):
    """The list's page query as it ran: EXPLAIN of it shows the plan PostgreSQL used.

    It is plain SQL with its values (never prepared: see bo1site/serving/db/prepared.py); a
    prepared page would show up as `EXECUTE bo1_list(...)`, whose EXPLAIN shows the cached plan.
    """
    return next(
        q
        for q in queries
        if q.startswith("EXECUTE bo1_list(") or (q.startswith("SELECT") and '"sessions"' in q)
    )


def plan_nodes(sql):
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, pending = [], [plan[0]["Plan"]]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending.extend(node.get("Plans", []))
    return nodes


def scans_on(nodes, table):
    return [(n["Node Type"], n.get("Index Name")) for n in nodes if n.get("Relation Name") == table]


def test_list_page_reads_the_user_recent_index(seeded_table):
    client = token_client(seeded_table)
    # Six runs: were the page prepared, PostgreSQL could switch it to a generic plan from its
    # sixth run (see the test below).
    for _ in range(6):
        queries = list_queries(client, f"{SESSIONS}?limit=20")
    scans = scans_on(plan_nodes(page_query(queries)), "sessions")
    assert scans in (
        [("Index Scan", "sessions_user_recent")],
        [("Index Only Scan", "sessions_user_recent")],
    ), scans


def test_list_page_deep_offset_never_scans_the_table(seeded_table):
    client = token_client(seeded_table)
    queries = list_queries(client, f"{SESSIONS}?limit=20&offset=300")
    scans = scans_on(plan_nodes(page_query(queries)), "sessions")
    assert scans and all(kind != "Seq Scan" for kind, _ in scans), scans


def test_list_filtered_by_status_uses_an_index(seeded_table):
    client = token_client(seeded_table)
    for _ in range(6):
        queries = list_queries(client, f"{SESSIONS}?status=failed")
    scans = scans_on(plan_nodes(page_query(queries)), "sessions")
    assert scans and all(kind in ("Index Scan", "Index Only Scan") for kind, _ in scans), scans


def test_list_total_reads_the_counters_not_the_sessions(seeded_table):
    client = token_client(seeded_table)
    queries = list_queries(client, f"{SESSIONS}?limit=20")
    nodes = plan_nodes(statement(queries, "bo1_list_count"))
    assert scans_on(nodes, "sessions") == []
    response = client.get(f"{SESSIONS}?limit=1")
    visible = DeliberationSession.objects.filter(user=seeded_table).exclude(status=Status.DELETED)
    assert response.json()["total"] == visible.count() > 300


# --- no plan switch slows a small user ---------------------------------------------------------

# The shape measured in issue 14: 20 users with 1,000 sessions each, interleaved in time, half of
# them completed with a long synthesis; and one user with a single session.
ISSUE_SEED_SQL = """
INSERT INTO sessions (
    id, user_id, problem_statement, problem_context, max_rounds, status, status_changed_at,
    pause_reason, phase, round_number, personas, contribution_count, clarification_question,
    total_cost, total_tokens, costs_by_phase, synthesis_text, final_recommendation,
    last_sequence, created_at, updated_at
)
SELECT 'bo1_' || gen_random_uuid(), (%(users)s::int[])[1 + n %% 20],
       'Should we expand the business in year ' || n || '?', '{}', 6,
       CASE WHEN (n / 20) %% 2 = 0 THEN 'completed' ELSE 'created' END,
       now(), '', 'complete', 0, '[]', 0, '', 0, 0, '{}',
       CASE WHEN (n / 20) %% 2 = 0 THEN repeat('A long synthesis. ', 85) ELSE '' END, '', 0,
       timestamp '2025-06-01' + n * interval '1 minute', now()
FROM generate_series(0, 19999) AS n
"""


def small_user_page_plan(client):
    """The scans of the one-session user's list page, as PostgreSQL plans it on this connection."""
    queries = list_queries(client, f"{SESSIONS}?limit=20")
    return scans_on(plan_nodes(page_query(queries)), "sessions")


def generic_plans_reading_sessions():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%%\"sessions\"%%' AND generic_plans > 0"
        )
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_after_many_deep_pages_a_user_with_one_session_lists_on_the_plan_of_a_fresh_connection():
    big = [UserFactory(username=f"history_{n}") for n in range(20)]
    small = UserFactory(username="newcomer")
    with connection.cursor() as cursor:
        cursor.execute(ISSUE_SEED_SQL, {"users": [u.pk for u in big]})
        cursor.execute("VACUUM ANALYZE sessions")
        cursor.execute("ANALYZE session_counts")
    SessionFactory(user=small)
    small_client, big_client = token_client(small), token_client(big[0])

    connection.close()  # a fresh connection: what a newly started server has
    fresh = small_user_page_plan(small_client)
    # An index led by user_id finds the one row (sessions_user_recent, or the foreign key's).
    assert fresh and all(
        kind in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
        and (index or "sessions_user").startswith("sessions_user")
        for kind, index in fresh
    ), fresh

    # Many deep pages of a large history on the same connection (enough for PostgreSQL to
    # switch a prepared statement to its generic plan, which walks sessions_created).
    for offset in range(900, 980, 4):
        page = big_client.get(f"{SESSIONS}?limit=20&offset={offset}").json()
        assert len(page["sessions"]) == 20 and page["total"] == 1000
    assert small_user_page_plan(small_client) == fresh
    assert generic_plans_reading_sessions() == []
