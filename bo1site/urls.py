"""URL configuration: the API under /api/v1, health, OpenAPI docs, the admin and the dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from observability.views import metrics
from sessions_app import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("api/health", health.health, name="health"),
    path("api/health/db", health.health_db, name="health-db"),
    path("api/health/redis", health.health_redis, name="health-redis"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("sessions_app.api.urls")),
    path("api/v1/", include("deliberation.api.urls")),
    path("api/v1/", include("webhooks.api.urls")),
    path("", include("dashboard.urls")),
]
