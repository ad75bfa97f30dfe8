"""ASGI entry point: the production server line serves the API and the event streams from here."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")

from bo1site.serving.handler import get_pooled_asgi_application

# Sync views run on a fixed pool of long-lived threads (bo1site/serving/handler.py), so each
# thread keeps its database connection between requests and CONN_MAX_AGE applies as under a
# threaded WSGI server.
application = get_pooled_asgi_application()
