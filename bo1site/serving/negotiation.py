"""DRF content negotiation with the common case answered without parsing.

DRF's DefaultContentNegotiation parses and ranks the Accept header of every request. Here a
request that accepts anything or plain JSON (nearly every API call) gets the first renderer at
once, which is the answer DRF's full negotiation gives it. Measured (docs/PERFORMANCE-HISTORY.md,
"Content negotiation"): 3% of the list's CPU per request. Wired in by settings
(`REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"]`).
"""

from __future__ import annotations

from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

# What API clients send: no Accept header (read as */*), */* or the JSON type itself.
_PLAIN_ACCEPTS = frozenset({"*/*", "application/json"})


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation; a request that accepts anything, or plain JSON, gets the first renderer.

    That is the answer DRF's full negotiation gives such a request (the first renderer, with its
    own media type), reached without parsing and ranking the Accept header on every request.
    Every other Accept header, and a `?format=` override, goes through DRF unchanged.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: list[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, Any]:
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        if (
            accept in _PLAIN_ACCEPTS
            and not format_suffix
            and renderers
            and renderers[0].media_type == "application/json"
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
