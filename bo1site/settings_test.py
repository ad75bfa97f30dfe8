"""Settings for the test suite: the real PostgreSQL and Redis, on databases of their own.

Several test runs may share one machine (a developer's editor, a second terminal): each run
takes a free slot, so it gets its own test database and its own pair of Redis databases and no
run flushes another's data. A run alone takes slot 0: Redis databases 14 and 15 and the test
database `test_bo1_<checkout>`, where <checkout> is a short digest of the checkout's path, so
that two checkouts on one machine (with different migrations, say) never reuse each other's
schema through `--reuse-db`.
Child processes (workers, web servers) get their stores from the environment of the run.
"""

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from .settings import *  # noqa: F403
from .settings import CACHES, DATABASES, REDIS_URL, env

# slot -> (cache db, broker db); slot 0 is the historical pair.
REDIS_SLOTS = [(14, 15), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]


def _redis_db(url: str, number: int) -> str:
    parts = urlparse(url)
    if parts.scheme == "unix":  # unix sockets carry the db as a query parameter
        return urlunparse(parts._replace(query=f"db={number}"))
    return urlunparse(parts._replace(path=f"/{number}"))


def _take_slot() -> int:
    """The first slot no other live test run holds; the lock lives as long as this process."""
    lock_dir = Path(tempfile.gettempdir())
    for slot in range(len(REDIS_SLOTS)):
        handle = (lock_dir / f"bo1-test-slot-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _HELD_LOCKS.append(handle)
        return slot
    raise RuntimeError("every test slot is in use: too many test runs at once")


_HELD_LOCKS: list = []

if "TEST_REDIS_URL" in os.environ:  # a child process of a test run: use the run's stores
    TEST_REDIS_URL = os.environ["TEST_REDIS_URL"]
    CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL")
else:
    TEST_SLOT = _take_slot()
    cache_db, broker_db = REDIS_SLOTS[TEST_SLOT]
    TEST_REDIS_URL = _redis_db(REDIS_URL, cache_db)
    CELERY_BROKER_URL = _redis_db(REDIS_URL, broker_db)
    checkout = hashlib.sha256(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:8]
    base_name = f"test_{DATABASES['default']['NAME']}_{checkout}"
    DATABASES["default"]["TEST"] = {
        "NAME": base_name if TEST_SLOT == 0 else f"{base_name}_s{TEST_SLOT}"
    }
    # Children started by the tests inherit the same slot through the environment.
    os.environ["TEST_REDIS_URL"] = TEST_REDIS_URL
    os.environ["TEST_CELERY_BROKER_URL"] = CELERY_BROKER_URL

# Celery prefers the CELERY_BROKER_URL environment variable to its settings; without this the
# suite (and its children) would publish tasks to the development broker that `make run` uses.
os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
CACHES["default"]["LOCATION"] = TEST_REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
# Webhook tests run their receivers on loopback, which production refuses.
BO1_WEBHOOK_ALLOW_PRIVATE = env.bool("BO1_WEBHOOK_ALLOW_PRIVATE", default=True)
