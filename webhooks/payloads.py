"""The body of a webhook: what a receiver needs to act on a session's change without a call back."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from bo1site.serving.jsoncodec import dumps
from sessions_app.models import DeliberationSession


def session_links(session_id: str) -> dict[str, str]:
    base = settings.BO1_PUBLIC_URL.rstrip("/")
    return {
        "api": base + reverse("session-detail", kwargs={"session_id": session_id}),
        "dashboard": base + reverse("dashboard-session", kwargs={"session_id": session_id}),
    }


def event_body(event_type: str, session: DeliberationSession) -> str:
    """The JSON text that is signed and sent (fixed once, so retries send the same bytes)."""
    body: dict[str, Any] = {
        "type": event_type,
        "timestamp": session.status_changed_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "session_id": session.id,
            "status": session.status,
            "phase": session.phase,
            "total_cost": str(session.total_cost),
            "final_recommendation": session.final_recommendation or "",
            "pause_reason": session.pause_reason or None,
            "pending_clarification": session.clarification_question or None,
            "error": session.error or None,
            "links": session_links(session.id),
        },
    }
    return dumps(body).decode()
