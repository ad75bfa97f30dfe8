"""The Celery application: `celery -A bo1site worker` runs deliberations."""

import os

from celery import Celery

from observability import worker as observability_worker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")

app = Celery("bo1site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The worker's metrics (BO1_WORKER_METRICS_PORT): its hooks must be in place before the worker
# loads Django, so they are connected here rather than in an app's ready().
observability_worker.connect()
