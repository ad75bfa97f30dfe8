"""Settings for the test suite: the real PostgreSQL and Redis, on Redis databases of their own."""

from urllib.parse import urlparse, urlunparse

from .settings import *  # noqa: F403
from .settings import CACHES, REDIS_URL, env


def _redis_db(url: str, number: int) -> str:
    parts = urlparse(url)
    if parts.scheme == "unix":  # unix sockets carry the db as a query parameter
        return urlunparse(parts._replace(query=f"db={number}"))
    return urlunparse(parts._replace(path=f"/{number}"))


TEST_REDIS_URL = env.str("TEST_REDIS_URL", default=_redis_db(REDIS_URL, 14))
CACHES["default"]["LOCATION"] = TEST_REDIS_URL
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default=_redis_db(REDIS_URL, 15))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
