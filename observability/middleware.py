"""Counts and times every request by its URL pattern, and counts open event streams."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from . import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no URL pattern (404s, scanners): one label, not one per path
STATIC = "static"


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered (e.g. api/v1/sessions/<str:session_id>), never the path."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return match.route
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return STATIC
    return UNMATCHED


class _Children:
    """Labelled children looked up once each (labels() takes a lock and builds a key)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], Any] = {}
        self.durations: dict[str, Any] = {}

    def count(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self.requests.get(key)
        if counter is None:
            counter = self.requests[key] = metrics.HTTP_REQUESTS.labels(method, route, str(status))
        counter.inc()
        histogram = self.durations.get(route)
        if histogram is None:
            histogram = self.durations[route] = metrics.HTTP_DURATION.labels(route)
        histogram.observe(seconds)


_children = _Children()


async def _counted_stream(content: AsyncIterator[Any]) -> AsyncIterator[Any]:
    metrics.SSE_STREAMS_OPEN.inc()
    try:
        async for chunk in content:
            yield chunk
    finally:  # the stream ended, or the client went away (the task is cancelled)
        metrics.SSE_STREAMS_OPEN.dec()


class MetricsMiddleware:
    """bo1_http_requests_total, bo1_http_request_duration_seconds and bo1_sse_streams_open."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response

    def _observe(self, request: HttpRequest, response: HttpResponseBase, started: float) -> None:
        method = request.method if request.method in METHODS else "other"
        _children.count(method, route_of(request), response.status_code,
                        time.perf_counter() - started)  # fmt: skip
        if (
            isinstance(response, StreamingHttpResponse)
            and response.is_async
            and response.get("Content-Type", "").startswith("text/event-stream")
        ):
            response.streaming_content = _counted_stream(response.streaming_content)
