"""The session store application."""

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Deliberation sessions"

    def ready(self) -> None:
        from . import converters

        converters.register()
        from . import signals  # noqa: F401  (connects the cache-sync receiver)
