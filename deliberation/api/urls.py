"""Control and export URLs, mounted under /api/v1/ beside the sessions API."""

from django.urls import path

from .export import SessionExportView
from .views import ClarifyView, KillView, PauseView, ResumeView, StartView

SESSION = "sessions/<session_id:session_id>"

urlpatterns = [
    path(f"{SESSION}/start", StartView.as_view(), name="session-start"),
    path(f"{SESSION}/pause", PauseView.as_view(), name="session-pause"),
    path(f"{SESSION}/resume", ResumeView.as_view(), name="session-resume"),
    path(f"{SESSION}/kill", KillView.as_view(), name="session-kill"),
    path(f"{SESSION}/clarify", ClarifyView.as_view(), name="session-clarify"),
    path(f"{SESSION}/export", SessionExportView.as_view(), name="session-export"),
]
