"""orjson codecs: the renderer writes DRF's bytes, the cache serializer django-redis's values."""

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.utils.translation import gettext_lazy
from django_redis.serializers.json import JSONSerializer
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from bo1site.serving import jsoncodec
from bo1site.serving.jsoncodec import OrjsonCacheSerializer, OrjsonRenderer
from sessions_app.cache import SessionCache, entry_key

WIDE = 2**70  # wider than 64 bits: orjson refuses to encode it and decodes it as a float

PAYLOAD = {
    "nested": {"list": [1, -2, 3.5, True, False, None, "x", [], {}], "tuple": (1, "two")},
    "decimals": [Decimal("12.50"), Decimal("-3.1415"), Decimal("0"), Decimal("100")],
    "utc": datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=UTC),
    "utc_whole_second": datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
    "offset": datetime(2024, 5, 1, 10, 30, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2024, 5, 1, 10, 30, 15, 500),
    "date": date(2024, 2, 29),
    "time": time(23, 59, 1, 999),
    "duration": timedelta(hours=1, seconds=1.5),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "lazy": gettext_lazy("This field is required."),
    "error": ErrorDetail("Ensure this value is greater than or equal to 1.", code="min_value"),
    "errors": {"limit": [ErrorDetail("A valid integer is required.", code="invalid")]},
    "returned": ReturnDict(
        {"a": 1, "rows": ReturnList([{"b": 2}], serializer=None)}, serializer=None
    ),
    1: "int key",
    -7: {2: "nested int key"},
    "text": 'Café ünïcödé 日本語 🎲 "quotes" \\ back\nslash\t\x00\x1f\x7f',
    "separators": "line\u2028break\u2029para",
    "key\u2028": "separator in a key",
}


def drf(data, media_type=None, context=None):
    return JSONRenderer().render(data, media_type, context)


def orjson_render(data, media_type=None, context=None):
    return OrjsonRenderer().render(data, media_type, context)


# --- API renderer -------------------------------------------------------------------------------


def test_renderer_is_the_configured_default():
    renderers = api_settings.DEFAULT_RENDERER_CLASSES
    assert renderers == [OrjsonRenderer]


def test_renderer_writes_drfs_bytes_for_a_varied_payload():
    body = orjson_render(PAYLOAD)
    assert body == drf(PAYLOAD)
    # The cases that matter, spelled out so that DRF changing its mind shows up here too.
    assert b'"utc":"2024-05-01T10:30:15.123456Z"' in body
    assert b'"utc_whole_second":"2024-05-01T10:30:00Z"' in body
    assert b'"offset":"2024-05-01T10:30:00+02:00"' in body
    assert b'"naive":"2024-05-01T10:30:15.000500"' in body
    assert b'"decimals":[12.5,-3.1415,0.0,100.0]' in body
    assert b'"1":"int key"' in body
    assert "日本語".encode() in body
    assert b"line\\u2028break\\u2029para" in body and b"\xe2\x80\xa8" not in body
    assert b"key\\u2028" in body and b"\xe2\x80\xa9" not in body


@pytest.mark.parametrize(
    "data",
    [
        {},
        [],
        "plain",
        "\u2028",
        0,
        True,
        [PAYLOAD, PAYLOAD["returned"]],
        ReturnList([ReturnDict({"id": 1}, serializer=None)], serializer=None),
        {"detail": ErrorDetail("Not found.", code="not_found")},
    ],
)
def test_renderer_matches_drf_for_other_shapes(data):
    assert orjson_render(data) == drf(data)


def test_renderer_matches_drf_for_integers_wider_than_64_bits():
    data = {"n": WIDE, "neg": -(2**64), "list": [2**64, 2**63 - 1, -(2**63)]}
    assert orjson_render(data) == drf(data)


@pytest.mark.parametrize("value", [1e-05, 1.5e-07, 0.1, 1e16, 1.2345e20, Decimal("0.000015")])
def test_renderer_floats_decode_to_drfs_values(value):
    """Small floats may be spelled without an exponent (0.00001, not 1e-05): the same number."""
    data = {"cost": value}
    assert json.loads(orjson_render(data)) == json.loads(drf(data))


def test_renderer_renders_none_as_an_empty_body():
    assert orjson_render(None) == drf(None) == b""


@pytest.mark.parametrize(
    "media_type", ["application/json; indent=2", "application/json; indent=4", "application/json"]
)
def test_renderer_honours_the_accepted_indent_like_drf(media_type):
    body = orjson_render(PAYLOAD, media_type)
    assert body == drf(PAYLOAD, media_type)
    assert (b'{\n  "nested"' in body) == media_type.endswith("indent=2")
    assert (b'{\n    "nested"' in body) == media_type.endswith("indent=4")


def test_renderer_honours_an_indent_in_the_renderer_context():
    assert orjson_render(PAYLOAD, None, {"indent": 3}) == drf(PAYLOAD, None, {"indent": 3})
    assert orjson_render(PAYLOAD, "application/json; indent=0") == drf(PAYLOAD)


# --- cache serializer ---------------------------------------------------------------------------

ROUND_TRIPS = [
    None,
    True,
    "text",
    3.25,
    [],
    {},
    [1, "two", None, False, 2.5, {"three": [3]}],
    {"id": "bo1_x", "problem_context": {"team": 6, "tags": ["a", "b"]}, "round_number": 0},
    {"unicode": "Café 日本語 🎲 \u2028\u2029 \x00", "empty": ""},
    [2**64 - 1, -(2**63), 1e-05],
]

WIDE_VALUES = [
    {"wide": WIDE, "neg": -(2**64), "nested": [{"n": 10**30}]},
    [WIDE],
    {"wide": WIDE, "text": " leading space, and \u2028"},
]

NON_JSON_VALUES = [
    Decimal("12.345600"),
    {"total_cost": Decimal("0.000015"), "costs_by_phase": {"debate": Decimal("1.50")}},
    {"created_at": datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=UTC)},
    {"at": datetime(2024, 5, 1, 10, 30, tzinfo=timezone(timedelta(hours=-5)))},
    {"naive": datetime(2024, 5, 1, 10, 30, 15, 999)},
    [date(2024, 2, 29), time(8, 15, 30, 250000), timedelta(days=1, minutes=3)],
    {"id": uuid.UUID(int=7), "label": gettext_lazy("Not found.")},
]


def serializer():
    return OrjsonCacheSerializer({})


def django_redis_round_trip(value):
    return json.loads(JSONSerializer({}).dumps(value))


@pytest.mark.parametrize("value", ROUND_TRIPS + WIDE_VALUES)
def test_cache_serializer_round_trips_json_values(value):
    decoded = serializer().loads(serializer().dumps(value))
    assert decoded == value
    assert json.dumps(decoded) == json.dumps(value)  # ints stay ints, floats floats


@pytest.mark.parametrize(
    "value",
    [*NON_JSON_VALUES, {"wide": WIDE, "at": datetime(2024, 5, 1, tzinfo=UTC), "n": Decimal("2.5")}],
)
def test_cache_serializer_decodes_what_django_redis_json_serializer_did(value):
    assert serializer().loads(serializer().dumps(value)) == django_redis_round_trip(value)


@pytest.mark.parametrize("value", ROUND_TRIPS + NON_JSON_VALUES)
def test_cache_entries_read_across_a_deploy_and_a_rollback(value):
    """Entries django-redis's serializer wrote read back the same, and the other way round."""
    old, new = JSONSerializer({}), serializer()
    assert new.loads(old.dumps(value)) == django_redis_round_trip(value)
    assert old.loads(new.dumps(value)) == django_redis_round_trip(value)


@pytest.mark.parametrize("value", WIDE_VALUES)
def test_cache_entries_with_wide_integers_read_back_after_a_rollback(value):
    """Not the other way: orjson reads an unmarked wide integer as a float (until the TTL)."""
    assert JSONSerializer({}).loads(serializer().dumps(value)) == value


def test_the_cache_backend_uses_the_serializer():
    cache = caches["default"]
    assert isinstance(cache.client._serializer, OrjsonCacheSerializer)
    value = {"at": datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=UTC), "cost": Decimal("1.5")}
    cache.set("jsoncodec-test", value)
    assert cache.get("jsoncodec-test") == {"at": "2024-05-01T10:30:15.123Z", "cost": "1.5"}


def test_hot_entries_keep_wide_integers_through_the_cache():
    snapshot = {"id": "bo1_wide", "problem_context": {"n": WIDE, "small": 5}}
    assert SessionCache.set("bo1_wide", snapshot)
    assert SessionCache.get("bo1_wide") == snapshot
    assert SessionCache.get_many(["bo1_wide"]) == {"bo1_wide": snapshot}


def test_hot_entries_written_by_django_redis_json_serializer_stay_readable(clean_redis):
    cache = caches["default"]
    snapshot = {"id": "bo1_old", "round_number": 2, "at": "2024-05-01T10:30:00Z"}
    clean_redis.set(cache.make_key(entry_key("bo1_old")), JSONSerializer({}).dumps(snapshot))
    assert SessionCache.get("bo1_old") == snapshot
    assert SessionCache.get_many(["bo1_old"]) == {"bo1_old": snapshot}


@pytest.mark.django_db
def test_a_session_with_a_wide_integer_in_its_context_is_served_exactly(
    api, django_capture_on_commit_callbacks
):
    """Create answers 201 (not a 500), and the detail, read from the hot entry, keeps the int."""
    body = json.dumps(
        {"problem_statement": "Should we move to Lisbon?", "problem_context": {"n": WIDE}}
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/sessions", data=body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert f'"problem_context":{{"n":{WIDE}}}'.encode() in created.content
    session_id = created.json()["id"]
    assert SessionCache.get(session_id)["problem_context"] == {"n": WIDE}
    detail = api.get(f"/api/v1/sessions/{session_id}")
    assert detail.status_code == 200
    assert detail.json()["problem_context"] == {"n": WIDE}
    assert detail.content == drf(detail.json())


def test_module_loads_decodes_bytes_from_either_serializer():
    value = {"n": WIDE, "s": "Café"}
    assert jsoncodec.loads(serializer().dumps(value)) == value
    assert jsoncodec.loads(JSONSerializer({}).dumps({"s": "Café"})) == {"s": "Café"}


def test_plain_dumps_keeps_integers_wider_than_64_bits_exact():
    event = {"sequence": 1, "data": {"n": 2**70, 3: "three"}}
    encoded = jsoncodec.dumps(event)
    assert json.loads(encoded) == {"sequence": 1, "data": {"n": 2**70, "3": "three"}}
    assert jsoncodec.loads(encoded)["data"]["n"] == 2**70
    assert jsoncodec.dumps({"a": 1}) == b'{"a":1}'
