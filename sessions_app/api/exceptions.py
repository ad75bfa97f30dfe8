"""API error shapes: store outages become a 503 with the reason instead of a 500, and an
oversized body a JSON 413."""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

STORE_ERRORS = (OperationalError, InterfaceError)


def store_unavailable_body(exc: Exception) -> dict[str, str]:
    """The body of a 503 for a database that cannot be reached."""
    return {
        "detail": "The database is unavailable; nothing was changed. Try again shortly.",
        "reason": f"database unavailable: {type(exc).__name__}",
    }


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus a 503 for PostgreSQL outages."""
    if isinstance(exc, STORE_ERRORS) or (
        isinstance(exc, DatabaseError) and "connection" in str(exc).lower()
    ):
        logger.error("Database unavailable during %s: %s", context.get("view"), exc)
        response = Response(store_unavailable_body(exc), status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML 400 page; API clients get JSON saying why.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"Request body too large: at most {limit} bytes are accepted."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return exception_handler(exc, context)
