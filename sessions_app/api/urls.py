"""URLs of the sessions API, mounted under /api/v1/."""

from django.urls import path

from .stream import SessionStreamView
from .views import SessionCollectionView, SessionDetailView, SessionEventsView

urlpatterns = [
    path("sessions", SessionCollectionView.as_view(), name="session-list"),
    path("sessions/<str:session_id>", SessionDetailView.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/events", SessionEventsView.as_view(), name="session-events"),
    path("sessions/<str:session_id>/stream", SessionStreamView.as_view(), name="session-stream"),
]
