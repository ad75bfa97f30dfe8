"""import_bo1's events: three sources merged, duplicates dropped, in time order, numbered 1..N."""

from datetime import datetime

import pytest

from sessions_app.models import DeliberationSession, SessionEvent
from tests.importer.conftest import expected, import_json

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = expected()
BY_CASE = {}
for item in EXPECTED["sessions"]:
    BY_CASE.setdefault(item["case"], []).append(item)


def _events(session_id):
    return list(SessionEvent.objects.filter(session_id=session_id).order_by("sequence"))


def test_events_of_every_session_are_merged_deduplicated_in_time_order_and_numbered(source):
    code, summary = import_json(source)

    assert code == 0
    assert summary["events_imported"] == sum(s["events"] for s in EXPECTED["sessions"])
    for item in EXPECTED["sessions"]:
        events = _events(item["id"])
        assert [e.sequence for e in events] == list(range(1, item["events"] + 1)), item["case"]
        assert [e.event_type for e in events] == item["event_types"], item["case"]
        stamps = [datetime.fromisoformat(t) for t in item["event_timestamps"]]
        assert [e.created_at for e in events] == stamps, item["case"]
        assert [e.data["original_timestamp"] for e in events] == item["event_timestamps"]
        assert [e.data["original_sequence"] for e in events] == item[
            "source_sequences_in_time_order"
        ], item["case"]
        assert DeliberationSession.objects.get(pk=item["id"]).last_sequence == item["events"]


def test_a_worker_restart_that_repeated_sequences_is_ordered_by_time(source):
    (item,) = BY_CASE["sequence_restart"]
    assert item["sequence_restart"] is True

    import_json(source)

    events = _events(item["id"])
    originals = [e.data["original_sequence"] for e in events]
    assert len(set(originals)) < len(originals)  # the original numbers repeat ...
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))  # ... ours do not
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)


def test_events_only_in_the_failed_events_queues_are_kept(source):
    import_json(source)

    (pg_only,) = BY_CASE["pg_only"]
    assert pg_only["events_queue_only"] == 1
    decision = [e for e in _events(pg_only["id"]) if e.event_type == "facilitator_decision"]
    assert any(e.data.get("reasoning") == "Enough views gathered." for e in decision)
    # The dead-letter queue's late contribution of a running session.
    late = BY_CASE["running"][1]
    assert late["events"] == late["events_redis"] == late["events_pg_rows"] + 1
    assert any("late contribution" in e.data.get("content", "") for e in _events(late["id"]))


def test_unknown_event_types_keep_their_name_and_original_data(source):
    import_json(source)

    (item,) = BY_CASE["paused_clarification"]
    last = _events(item["id"])[-1]
    assert last.event_type == "clarification_required"
    assert last.data["questions"] == [{"reason": "cost", "question": "What is the maximum budget?"}]
