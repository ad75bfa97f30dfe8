"""Middleware that turns a database outage outside DRF (admin, dashboard) into a clear 503."""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from .api.exceptions import STORE_ERRORS, store_unavailable_body

logger = logging.getLogger(__name__)


class StoreUnavailableMiddleware:
    """Answer 503 with the reason when PostgreSQL cannot be reached."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, STORE_ERRORS):
            logger.error("Database unavailable at %s: %s", request.path, exception)
            response = JsonResponse(store_unavailable_body(exception), status=503)
            response["Retry-After"] = "5"
            return response
        return None
