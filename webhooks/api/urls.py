"""URLs of the webhooks API, mounted under /api/v1/."""

from django.urls import path

from .views import (
    EndpointCollectionView,
    EndpointDeliveriesView,
    EndpointDetailView,
    EndpointRotateSecretView,
)

urlpatterns = [
    path("webhooks", EndpointCollectionView.as_view(), name="webhook-list"),
    path("webhooks/<str:endpoint_id>", EndpointDetailView.as_view(), name="webhook-detail"),
    path(
        "webhooks/<str:endpoint_id>/rotate-secret",
        EndpointRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "webhooks/<str:endpoint_id>/deliveries",
        EndpointDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
]
