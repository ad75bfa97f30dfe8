"""Routes the project's stores through a FaultProxy: URLs for child processes, and this process.

Child processes (workers, web servers) get proxied URLs in their environment. This process is
re-pointed with settings overrides (Redis) or by swapping the database connection's host and
port (PostgreSQL); both are undone when the context ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse, urlunparse

from django.conf import settings
from django.db import connection

from bo1site.celery import app as celery_app
from tests.faults.proxy import FaultProxy
from tests.processes import database_url


def tcp_target(url: str) -> tuple[str, int]:
    """Host and port of a store URL; the proxy speaks TCP only."""
    parts = urlparse(url)
    if parts.scheme == "unix" or not parts.hostname:
        raise RuntimeError(f"the fault proxy needs a TCP store, not {parts.scheme}://")
    default = {"redis": 6379, "rediss": 6379, "postgres": 5432, "postgresql": 5432}
    return parts.hostname, parts.port or default.get(parts.scheme, 0)


def via(proxy: FaultProxy, url: str) -> str:
    """The same URL (credentials, database, query) with its host and port replaced by the proxy."""
    parts = urlparse(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunparse(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port}"))


# The real stores of this test run, read before any test re-points the settings.
REAL_REDIS_URL = str(settings.CACHES["default"]["LOCATION"])
REAL_BROKER_URL = str(settings.CELERY_BROKER_URL)


def redis_url() -> str:
    return REAL_REDIS_URL


def redis_proxy_for_tests(name: str = "redis-proxy") -> FaultProxy:
    return FaultProxy(*tcp_target(redis_url()), name=name).start()


def postgres_proxy_for_tests(name: str = "postgres-proxy") -> FaultProxy:
    return FaultProxy(*tcp_target(database_url()), name=name).start()


def redis_env_via(proxy: FaultProxy) -> dict[str, str]:
    """Environment that sends a child's cache, streams, leases and broker through the proxy."""
    broker = via(proxy, REAL_BROKER_URL)
    return {
        "TEST_REDIS_URL": via(proxy, redis_url()),
        "TEST_CELERY_BROKER_URL": broker,
        # Celery reads CELERY_BROKER_URL from the environment before any configuration.
        "CELERY_BROKER_URL": broker,
    }


def database_env_via(proxy: FaultProxy) -> dict[str, str]:
    """Environment that sends a child's PostgreSQL connections through the proxy."""
    return {"DATABASE_URL": via(proxy, database_url())}


def point_celery_at(url: str) -> None:
    """Publish this process's tasks to `url` from now on.

    Celery gives the CELERY_BROKER_URL environment variable precedence over settings, and keeps
    a connection pool once it has published: both are re-pointed here.
    """
    os.environ["CELERY_BROKER_URL"] = url
    # Only forget the pools: kombu shares them per URL, so closing one would break its next user.
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@contextlib.contextmanager
def broker_of_this_run() -> Iterator[str]:
    """Tasks go to this test run's broker database (whatever CELERY_BROKER_URL said before)."""
    before = os.environ.get("CELERY_BROKER_URL")
    point_celery_at(REAL_BROKER_URL)
    try:
        yield REAL_BROKER_URL
    finally:
        point_celery_at(before or REAL_BROKER_URL)


@contextlib.contextmanager
def redis_in_process_via(proxy: FaultProxy, django_settings: Any) -> Iterator[FaultProxy]:
    """This process's cache, streams, leases and task publishing go through the proxy.

    `django_settings` is pytest-django's `settings` fixture: overriding CACHES makes Django drop
    its cache connections, so the next use connects through the proxy.
    """
    caches = {**settings.CACHES, "default": {**settings.CACHES["default"]}}
    caches["default"]["LOCATION"] = via(proxy, redis_url())
    django_settings.CACHES = caches
    point_celery_at(via(proxy, REAL_BROKER_URL))
    try:
        yield proxy
    finally:
        point_celery_at(REAL_BROKER_URL)


@contextlib.contextmanager
def database_in_process_via(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """This process's default database connection goes through the proxy.

    Needs a transactional test: the connection is closed and reopened, which a test wrapped in
    a transaction would not survive.
    """
    params = connection.settings_dict
    saved = params["HOST"], params["PORT"]
    connection.close()
    params["HOST"], params["PORT"] = "127.0.0.1", str(proxy.port)
    try:
        yield proxy
    finally:
        proxy.restore()
        with contextlib.suppress(Exception):
            connection.close()
        params["HOST"], params["PORT"] = saved
