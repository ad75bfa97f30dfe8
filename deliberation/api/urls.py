"""Control and export URLs, mounted under /api/v1/ beside the sessions API."""

from django.urls import path

from .export import SessionExportView
from .views import ClarifyView, KillView, PauseView, ResumeView, StartView

urlpatterns = [
    path("sessions/<str:session_id>/start", StartView.as_view(), name="session-start"),
    path("sessions/<str:session_id>/pause", PauseView.as_view(), name="session-pause"),
    path("sessions/<str:session_id>/resume", ResumeView.as_view(), name="session-resume"),
    path("sessions/<str:session_id>/kill", KillView.as_view(), name="session-kill"),
    path("sessions/<str:session_id>/clarify", ClarifyView.as_view(), name="session-clarify"),
    path("sessions/<str:session_id>/export", SessionExportView.as_view(), name="session-export"),
]
