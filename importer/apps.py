"""Brings the original Board of One service's sessions into this store (manage.py import_bo1)."""

from django.apps import AppConfig


class ImporterConfig(AppConfig):
    name = "importer"
    verbose_name = "Import from the original service"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the post_delete receiver)
