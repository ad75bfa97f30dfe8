"""URLs of the sessions API, mounted under /api/v1/."""

from django.urls import path

from .account import AccountExportView, AccountView
from .stream import SessionStreamView
from .views import SessionCollectionView, SessionDetailView, SessionEventsView

SESSION = "sessions/<session_id:session_id>"

urlpatterns = [
    path("sessions", SessionCollectionView.as_view(), name="session-list"),
    path(SESSION, SessionDetailView.as_view(), name="session-detail"),
    path(f"{SESSION}/events", SessionEventsView.as_view(), name="session-events"),
    path(f"{SESSION}/stream", SessionStreamView.as_view(), name="session-stream"),
    path("me", AccountView.as_view(), name="me"),
    path("me/export", AccountExportView.as_view(), name="me-export"),
]
