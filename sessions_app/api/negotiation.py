"""Content negotiation for views whose successful answer is not rendered by DRF."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JSONErrorsOnly(BaseContentNegotiation):
    """The view answers with its own body (an export, an event stream); DRF renders only errors,
    always as JSON. So neither `Accept: text/event-stream` nor `?format=` can make it a 406."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type
