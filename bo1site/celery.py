"""The Celery application: `celery -A bo1site worker` runs deliberations."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")

app = Celery("bo1site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
