"""The observability application: metrics, the request context of log lines."""

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (counts status changes; the worker's endpoint)
