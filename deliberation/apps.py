"""The deliberation application: the engine, the worker task and the control API."""

from django.apps import AppConfig


class DeliberationConfig(AppConfig):
    name = "deliberation"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (starts the periodic reconcile with each worker)
