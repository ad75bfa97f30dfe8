"""ASGI entry point: the production server line serves the API and the event streams from here."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")
# Under ASGI each request may run on a fresh thread, so a persistent connection is never reused
# and never closed: PostgreSQL runs out of connections. Django's docs say to disable them here.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

application = get_asgi_application()
