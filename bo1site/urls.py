"""URL configuration: the API under /api/v1, health, OpenAPI docs, the admin and the dashboard."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sessions_app import health


@csrf_exempt  # nothing is changed, whatever the method
def api_not_found(request: HttpRequest) -> JsonResponse:
    """An API path that names no route (an unknown route, or a segment that cannot be a session
    id): a JSON 404 like the API's own, in every mode (Django's 404 page is HTML)."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", health.health, name="health"),
    path("api/health/db", health.health_db, name="health-db"),
    path("api/health/redis", health.health_redis, name="health-redis"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("sessions_app.api.urls")),
    path("api/v1/", include("deliberation.api.urls")),
    re_path(r"^api/v1/", api_not_found, name="api-not-found"),  # whatever the rest, newlines too
    path("", include("dashboard.urls")),
]
