"""Control URLs, mounted under /api/v1/ beside the sessions API."""

from django.urls import path

from .views import ClarifyView, KillView, PauseView, ResumeView, StartView

urlpatterns = [
    path("sessions/<session_id:session_id>/start", StartView.as_view(), name="session-start"),
    path("sessions/<session_id:session_id>/pause", PauseView.as_view(), name="session-pause"),
    path("sessions/<session_id:session_id>/resume", ResumeView.as_view(), name="session-resume"),
    path("sessions/<session_id:session_id>/kill", KillView.as_view(), name="session-kill"),
    path("sessions/<session_id:session_id>/clarify", ClarifyView.as_view(), name="session-clarify"),
]
