"""Query-string serializers share their fields within a thread yet validate each input alone."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.http import QueryDict

from sessions_app.api.serializers import EventsQuerySerializer, SessionListQuerySerializer
from tests.factories import SessionFactory

SESSIONS = "/api/v1/sessions"
THREADS = 8

# (query string, validated_data when valid, else {field: [error codes]})
LIST_CASES = [
    ("", {"limit": 20, "offset": 0}, None),
    ("limit=0", None, {"limit": ["min_value"]}),
    ("status=created&limit=5&offset=10", {"status": "created", "limit": 5, "offset": 10}, None),
    ("limit=abc", None, {"limit": ["invalid"]}),
    ("status=", {"status": "", "limit": 20, "offset": 0}, None),
    ("status=bogus", None, {"status": ["invalid_choice"]}),
    ("offset=7", {"limit": 20, "offset": 7}, None),
    ("limit=101&offset=-1&status=deleted", None, {
        "limit": ["max_value"], "offset": ["min_value"], "status": ["invalid_choice"],
    }),
    ("limit=100&status=running", {"limit": 100, "offset": 0, "status": "running"}, None),
]  # fmt: skip
EVENT_CASES = [
    ("", {"after": 0, "limit": 1000}, None),
    ("after=-1", None, {"after": ["min_value"]}),
    ("after=12&limit=3", {"after": 12, "limit": 3}, None),
    ("limit=1001", None, {"limit": ["max_value"]}),
]


def outcome(serializer_class, query):
    """What a fresh serializer makes of a query string: its data, or its error codes."""
    serializer = serializer_class(data=QueryDict(query))
    if serializer.is_valid():
        assert serializer.errors == {}
        return dict(serializer.validated_data), None
    assert serializer.validated_data == {}
    return None, {name: [e.code for e in errors] for name, errors in serializer.errors.items()}


def expected(cases):
    return [(data, errors) for _, data, errors in cases]


def outcomes(serializer_class, cases):
    return [outcome(serializer_class, query) for query, _, _ in cases]


# --- one thread ---------------------------------------------------------------------------------


def test_instances_in_a_row_each_validate_their_own_input():
    """Valid and invalid inputs alternate; no errors or data carry over, defaults still apply."""
    for _ in range(5):
        assert outcomes(SessionListQuerySerializer, LIST_CASES) == expected(LIST_CASES)
        assert outcomes(EventsQuerySerializer, EVENT_CASES) == expected(EVENT_CASES)


def test_an_earlier_instance_keeps_its_result_after_later_ones_validate():
    invalid = SessionListQuerySerializer(data=QueryDict("limit=0&status=bogus"))
    assert not invalid.is_valid()
    valid = SessionListQuerySerializer(data=QueryDict("limit=5"))
    assert valid.is_valid(), valid.errors
    again_invalid = SessionListQuerySerializer(data=QueryDict("limit=abc"))
    assert not again_invalid.is_valid()

    assert valid.errors == {}
    assert valid.validated_data == {"limit": 5, "offset": 0}
    assert set(invalid.errors) == {"limit", "status"}
    assert str(invalid.errors["limit"][0]) == "Ensure this value is greater than or equal to 1."
    assert str(invalid.errors["status"][0]) == '"bogus" is not a valid choice.'
    assert again_invalid.errors == {"limit": ["A valid integer is required."]}


def test_instances_in_one_thread_share_one_set_of_fields():
    first, second = SessionListQuerySerializer(), SessionListQuerySerializer(data=QueryDict(""))
    assert first.fields is second.fields
    assert set(first.fields) == {
        "status", "q", "cursor", "created_after", "created_before", "limit", "offset",
    }  # fmt: skip
    assert EventsQuerySerializer().fields is EventsQuerySerializer().fields
    assert EventsQuerySerializer().fields is not first.fields  # each class its own set


def test_each_thread_builds_its_own_fields():
    here = SessionListQuerySerializer().fields

    def in_another_thread():
        one, two = SessionListQuerySerializer().fields, SessionListQuerySerializer().fields
        return one, two

    with ThreadPoolExecutor(max_workers=1) as pool:
        one, two = pool.submit(in_another_thread).result()
    assert one is two
    assert one is not here
    assert set(one) == set(here)
    assert all(one[name] is not here[name] for name in here)
    assert SessionListQuerySerializer().fields is here  # unchanged by the other thread


def test_threads_validate_at_the_same_time_each_with_its_own_results():
    barrier = threading.Barrier(THREADS)
    rounds = 30

    def worker(index):
        """Each round all threads start together, each on a different case of each list."""
        seen = []
        for round_number in range(rounds):
            list_query, *_ = LIST_CASES[(index + round_number) % len(LIST_CASES)]
            event_query, *_ = EVENT_CASES[(index + round_number) % len(EVENT_CASES)]
            barrier.wait(timeout=30)
            seen.append(outcome(SessionListQuerySerializer, list_query))
            seen.append(outcome(EventsQuerySerializer, event_query))
        return SessionListQuerySerializer().fields, seen

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))

    for index, (_, seen) in enumerate(results):
        want = []
        for round_number in range(rounds):
            _, *list_want = LIST_CASES[(index + round_number) % len(LIST_CASES)]
            _, *event_want = EVENT_CASES[(index + round_number) % len(EVENT_CASES)]
            want += [tuple(list_want), tuple(event_want)]
        assert seen == want, f"thread {index}"
    fields = [fields for fields, _ in results]
    assert len({id(f) for f in fields}) == THREADS  # one set per thread, all alive here


# --- through the API ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_invalid_list_queries_are_400s_under_the_field_every_time(api, user):
    SessionFactory(user=user)
    for _ in range(3):
        for query, field, message in [
            ("limit=0", "limit", "Ensure this value is greater than or equal to 1."),
            ("limit=abc", "limit", "A valid integer is required."),
            ("status=bogus", "status", '"bogus" is not a valid choice.'),
        ]:
            response = api.get(f"{SESSIONS}?{query}")
            assert response.status_code == 400, (query, response.content)
            assert response.json() == {field: [message]}, query
            ok = api.get(SESSIONS)  # a valid request in between sees no stale errors
            assert ok.status_code == 200, ok.content
            body = ok.json()
            assert (body["limit"], body["offset"], body["total"]) == (20, 0, 1)
        assert api.get(f"{SESSIONS}?limit=1&offset=0&status=created").json()["limit"] == 1


@pytest.mark.django_db
def test_invalid_event_queries_are_400s_under_the_field_every_time(api, user):
    session = SessionFactory(user=user)
    events = f"{SESSIONS}/{session.pk}/events"
    for _ in range(3):
        response = api.get(f"{events}?after=-1&limit=0")
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"after", "limit"}
        ok = api.get(events)
        assert ok.status_code == 200, ok.content
        assert ok.json()["count"] == 0
