"""The `<session_id:...>` path converter: a URL segment that cannot be a session id (a NUL
byte, another shape) matches no route, so it is a 404 before it reaches any store."""

from django.urls import register_converter

from .models import SESSION_ID_REGEX


class SessionIdConverter:
    regex = SESSION_ID_REGEX

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def register() -> None:
    """Called once, from the app's ready(), before any URLconf is imported."""
    register_converter(SessionIdConverter, "session_id")
