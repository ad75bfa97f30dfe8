"""bo1site: the Django project of Board of One."""

from .celery import app as celery_app

__all__ = ("celery_app",)
