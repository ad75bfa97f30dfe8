"""JSON on the hot paths, encoded and decoded with orjson.

Stock DRF renders with the standard library's json module and django-redis serializes with
it too. Every list request decodes a page of hot entries from Redis and encodes the page for the
client, and with the standard library those two steps were a fifth of the request's CPU. The
classes here produce the same JSON as the ones they replace (Django's encoder for values it does
not know natively, DRF's rules for the API), only faster. Measured: decoding a page of 20 hot
entries 270 -> 75 us (docs/PERFORMANCE-HISTORY.md, "Hot-entry reads").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django_redis.serializers.base import BaseSerializer
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder as DRFJSONEncoder

# orjson refuses to encode integers wider than 64 bits and decodes them as floats. The cache
# writes values holding one with the standard library, behind a leading space (still plain JSON
# to any reader) that sends them back through the standard library, which keeps them exact.
_STDLIB_MARK = b" "


def loads(value: bytes) -> Any:
    """Decode a cache entry: orjson, or the standard library for an entry marked as its own."""
    if value[:1] == _STDLIB_MARK:
        return json.loads(value)
    return orjson.loads(value)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain values (keys made strings), readable back with `loads`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # e.g. an integer wider than 64 bits
        compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return _STDLIB_MARK + compact.encode()


# Datetimes, dates and times go to the fallback encoder too, so they read exactly as before.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_django_default = DjangoJSONEncoder().default
_drf_default = DRFJSONEncoder().default

# U+2028 and U+2029 are valid JSON but end a line in JavaScript; DRF escapes them, and so do we.
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


class OrjsonCacheSerializer(BaseSerializer):
    """django-redis serializer: plain JSON values, as its JSONSerializer writes them."""

    def dumps(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value, default=_django_default, option=_OPTIONS)
        except orjson.JSONEncodeError:  # e.g. an integer wider than 64 bits
            return _STDLIB_MARK + json.dumps(value, cls=DjangoJSONEncoder).encode()

    def loads(self, value: bytes) -> Any:
        return loads(value)


class OrjsonRenderer(JSONRenderer):
    """DRF's JSONRenderer (compact, UTF-8), encoded by orjson; NaN and infinities become null.

    A request that asks for indented output (`Accept: application/json; indent=2`) is rendered
    by DRF's own renderer.
    """

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            body = orjson.dumps(data, default=_drf_default, option=_OPTIONS)
        except orjson.JSONEncodeError:  # e.g. an integer wider than 64 bits: DRF's way, exactly
            return super().render(data, accepted_media_type, renderer_context)
        for raw, escaped in _LINE_SEPARATORS:
            if raw in body:
                body = body.replace(raw, escaped)
        return body
