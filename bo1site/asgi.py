"""ASGI entry point: the production server line serves the API and the event streams from here."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")

application = get_asgi_application()
