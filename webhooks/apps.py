"""Webhooks: tell other systems when a session finishes, fails, is killed or needs an answer."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        # Records deliveries in the status change's transaction; starts the sweeper in workers.
        from . import receivers  # noqa: F401
