"""The observability application: metrics, the request context of log lines."""

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"

    def ready(self) -> None:
        import logging

        from django.conf import settings

        from . import receivers  # noqa: F401  (counts status changes)

        if settings.BO1_LOG_FORMAT == "json":
            logging.captureWarnings(True)  # Python's warnings become JSON lines too
