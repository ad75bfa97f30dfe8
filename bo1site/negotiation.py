"""DRF content negotiation with the common case answered without parsing."""

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
