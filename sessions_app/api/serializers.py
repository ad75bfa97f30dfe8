"""Request validation and the documented response shapes of the sessions API."""

import json
import threading
from typing import Any

from django.core.validators import RegexValidator
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

import vocabulary

from ..models import Phase, Status

MAX_CONTEXT_BYTES = 50 * 1024
MAX_CONTEXT_DEPTH = 64
MAX_SEARCH_CHARS = 500
MAX_CURSOR_CHARS = 500
LISTABLE_STATUSES = [str(s) for s in vocabulary.LISTABLE_STATUSES]


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def json_shape(value: Any) -> tuple[int, bool]:
    """The nesting depth of a JSON value, and whether a key or string in it holds a NUL."""
    depth, has_nul = 0, False
    pending = [(value, 1)]
    while pending:  # iterative: a deeply nested value must not exhaust the stack
        item, level = pending.pop()
        if isinstance(item, str):
            has_nul = has_nul or "\x00" in item
        elif isinstance(item, dict):
            depth = max(depth, level)
            has_nul = has_nul or any("\x00" in key for key in item)
            pending.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            depth = max(depth, level)
            pending.extend((child, level + 1) for child in item)
    return depth, has_nul


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """A JSON object that PostgreSQL can store: bounded in size and nesting, without NULs."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "too_deep": f"Must not be nested more than {MAX_CONTEXT_DEPTH} levels deep.",
        "has_nul": "Must not contain NUL characters.",
        "too_large": "Must be at most 50 KB when encoded as JSON.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_object")
        depth, has_nul = json_shape(data)
        if depth > MAX_CONTEXT_DEPTH:
            self.fail("too_deep")
        if has_nul:
            self.fail("has_nul")
        value = super().to_internal_value(data)
        if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_CONTEXT_BYTES:
            self.fail("too_large")
        return value


# Each thread's bound input fields, by serializer class (see InputSerializer).
_input_fields = threading.local()


class InputSerializer(serializers.Serializer):
    """A flat serializer of request input (a body or a query string), fields built per thread.

    DRF deep-copies every declared field for every serializer instance so that nested and
    per-request state stays apart; building the validators anew was a tenth of the list
    request's CPU. These serializers only validate input: no instance, no context, never
    partial, no nested serializers, so their fields carry no per-request state, and each thread
    builds its set once and every later instance in that thread reuses it.
    """

    @cached_property
    def fields(self) -> Any:
        by_class = _input_fields.__dict__.setdefault("by_class", {})
        fields = by_class.get(type(self))
        if fields is None:
            fields = by_class[type(self)] = super().fields
        return fields


class SessionCreateSerializer(InputSerializer):
    problem_statement = StrictCharField(
        min_length=10,
        max_length=10_000,
        trim_whitespace=True,
        # Documents in the schema what trimming and DRF's NUL check already enforce.
        validators=[
            RegexValidator(
                r"^\s*[^\s\x00][^\x00]{8,}[^\s\x00]\s*$",
                "Must hold at least 10 characters besides surrounding spaces, and no NUL.",
            )
        ],
        help_text="The decision to deliberate, 10 to 10,000 characters after trimming.",
    )
    problem_context = JSONObjectField(
        required=False,
        default=dict,
        help_text="Optional facts for the board: a JSON object of at most 50 KB.",
    )
    max_rounds = serializers.IntegerField(required=False, default=6, min_value=1, max_value=10)


class SessionListQuerySerializer(InputSerializer):
    # `?status=` (blank) means no filter, as an empty form field would send it.
    status = serializers.ChoiceField(choices=LISTABLE_STATUSES, required=False, allow_blank=True)
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_SEARCH_CHARS,
        help_text=(
            "Full-text search (English stemming) over the problem, its context, the synthesis "
            'and the recommendation: words, "an exact phrase", `or`, `-word` to exclude. '
            "Results come by relevance, then newest, each with a `snippet`."
        ),
    )
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_CURSOR_CHARS,
        help_text="A page's `next_cursor`, to continue after it (with the same filters).",
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="ISO 8601: only sessions created after this instant."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="ISO 8601: only sessions created before this instant."
    )
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=100)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10_000_000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("q", "cursor"):  # blank means absent
            if not (attrs.get(name) or "").strip():
                attrs.pop(name, None)
        if "q" in attrs:
            attrs["q"] = attrs["q"].strip()
        if "cursor" in attrs and (self.initial_data.get("offset") or "").strip():
            raise serializers.ValidationError(
                {"cursor": ["Give either cursor or offset, not both."]}
            )
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after >= before:
            raise serializers.ValidationError(
                {"created_before": ["Must be later than created_after."]}
            )
        return attrs


class SessionSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    problem_statement = serializers.CharField(help_text="The first 200 characters.")
    status = serializers.ChoiceField(choices=Status.values)
    phase = serializers.ChoiceField(choices=Phase.values)
    round_number = serializers.IntegerField()
    total_cost = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=True)
    total_tokens = serializers.IntegerField()
    contributions = serializers.IntegerField()
    pause_reason = serializers.CharField(allow_null=True)
    final_recommendation = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    last_activity_at = serializers.DateTimeField(allow_null=True)
    snippet = serializers.CharField(
        required=False,
        allow_null=True,
        help_text=(
            "With `q` only: an excerpt around the matches, as HTML (the text escaped, each "
            "match in <mark>)."
        ),
    )


class SessionListSerializer(serializers.Serializer):
    sessions = SessionSummarySerializer(many=True)
    total = serializers.IntegerField(help_text="The exact number of sessions the filter matches.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField(allow_null=True, help_text="null on a page read by cursor.")
    has_more = serializers.BooleanField()
    next_offset = serializers.IntegerField(allow_null=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null on the last page."
    )


class SessionErrorInfoSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class SessionDetailSerializer(serializers.Serializer):
    id = serializers.CharField()
    problem_statement = serializers.CharField()
    problem_context = serializers.DictField()
    max_rounds = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.values)
    phase = serializers.ChoiceField(choices=Phase.values)
    round_number = serializers.IntegerField()
    pause_reason = serializers.CharField(allow_null=True)
    pending_clarification = serializers.CharField(allow_null=True)
    personas = serializers.ListField(child=serializers.DictField())
    contributions = serializers.IntegerField()
    event_count = serializers.IntegerField()
    total_cost = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=True)
    total_tokens = serializers.IntegerField()
    costs_by_phase = serializers.DictField()
    synthesis = serializers.CharField(allow_null=True)
    final_recommendation = serializers.CharField(allow_null=True)
    error = SessionErrorInfoSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    last_activity_at = serializers.DateTimeField(allow_null=True)


class DetailErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class UnavailableErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    reason = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer):
    """A 400: each offending field maps to its messages (`detail` for a malformed body)."""

    detail = serializers.CharField(required=False)
    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = "ValidationError"


class EventsQuerySerializer(InputSerializer):
    after = serializers.IntegerField(required=False, default=0, min_value=0)
    limit = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=1000)


class EventSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    event_type = serializers.CharField()
    data = serializers.DictField()
    created_at = serializers.DateTimeField()


class EventListSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    events = EventSerializer(many=True)
    count = serializers.IntegerField()
