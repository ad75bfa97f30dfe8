"""GET /metrics: Prometheus' text exposition format, behind a bearer token when one is set."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from .exposition import render, web_registry


def token_accepted(request: HttpRequest) -> bool:
    expected = settings.BO1_METRICS_TOKEN
    if not expected:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not token_accepted(request):
        response = JsonResponse(
            {"detail": "A valid bearer token is needed for /metrics."}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(web_registry()), content_type=CONTENT_TYPE_LATEST)
