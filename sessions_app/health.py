"""Health endpoints: 200 when a store answers, 503 with the reason when it does not."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .cache import REDIS_ERRORS, redis_client

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure to answer is the reason we report
        logger.warning("Health check: database unavailable: %s", exc)
        return f"database unavailable: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


def check_redis() -> str | None:
    """None when Redis answers, else the reason."""
    try:
        redis_client().ping()
    except REDIS_ERRORS as exc:
        logger.warning("Health check: redis unavailable: %s", exc)
        return f"redis unavailable: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


CHECKS = {"database": check_database, "redis": check_redis}


def _answer(names: list[str]) -> JsonResponse:
    failures = {name: reason for name in names if (reason := CHECKS[name]()) is not None}
    body = {
        "status": "unavailable" if failures else "ok",
        "checks": {name: failures.get(name, "ok") for name in names},
    }
    if failures:
        body["reason"] = "; ".join(failures.values())
    return JsonResponse(body, status=503 if failures else 200)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return _answer(["database", "redis"])


@never_cache
@require_GET
def health_db(request: HttpRequest) -> JsonResponse:
    return _answer(["database"])


@never_cache
@require_GET
def health_redis(request: HttpRequest) -> JsonResponse:
    return _answer(["redis"])
