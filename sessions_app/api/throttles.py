"""Per-user rate limits on the calls that cost something (create, start), counted in Redis.

Each user has one counter per scope and fixed window (`bo1:throttle:<scope>:<user>:<window>`,
named in sessions_app/redis_keys.py), raised with an atomic INCR and expiring with its window,
so every web process shares the count.
Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env BO1_THROTTLE_CREATE and
BO1_THROTTLE_START), in DRF's "<count>/<period>" form; an empty rate switches a limit off.
When Redis cannot be reached the request goes through and the skipped check is logged: a cache
outage must not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from ..cache import REDIS_ERRORS, redis_client
from ..redis_keys import throttle_key

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'60/min' -> (60, 60): requests allowed, and the window in seconds."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0].lower()]


def rate_for(scope: str) -> str | None:
    """The configured rate of a scope; None when it is switched off."""
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
    return str(rate) if rate else None


def seconds_until_allowed(scope: str, ident: str) -> float | None:
    """Count one request of `ident` in `scope`; None when it is allowed, else the wait.

    Usable outside DRF (a form view) so that every way in shares the same budget.
    """
    rate = rate_for(scope)
    if not rate:
        return None
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    key = throttle_key(scope, ident, window)
    try:
        # One round trip; no MULTI/EXEC around the two: another request's INCR between them
        # only counts, and the expiry is set again by every request of the window.
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, period + 1)
        count = int(pipe.execute()[0])
    except REDIS_ERRORS as exc:
        logger.warning(
            "Rate limit %s not checked for %s (Redis unavailable: %s); request let through",
            scope,
            ident,
            exc,
        )
        return None
    if count <= limit:
        return None
    logger.info("Rate limit %s (%s) reached by %s", scope, rate, ident)
    return (window + 1) * period - now


class RedisRateThrottle(BaseThrottle):
    """At most N unsafe requests per user and window; other methods are not counted."""

    scope = ""
    methods = frozenset({"POST"})

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def identity(self, request: Request) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user{user.pk}"
        return f"ip{self.get_ident(request)}"

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method not in self.methods:
            return True
        self.retry_after = seconds_until_allowed(self.scope, self.identity(request))
        return self.retry_after is None

    def wait(self) -> float | None:
        return math.ceil(self.retry_after) if self.retry_after is not None else None


class SessionCreateThrottle(RedisRateThrottle):
    """POST /sessions."""

    scope = "session_create"


class SessionStartThrottle(RedisRateThrottle):
    """POST /sessions/{id}/start."""

    scope = "session_start"
