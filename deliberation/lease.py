"""A worker's per-session lease in Redis: one runner per session, and a sign of life."""

import logging
import threading

from django.conf import settings
from redis.exceptions import LockError

from sessions_app.cache import REDIS_ERRORS, redis_client
from sessions_app.redis_keys import lease_key

logger = logging.getLogger(__name__)


def lease_alive(session_id: str) -> bool | None:
    """Whether some worker holds the session's lease; None when Redis cannot tell."""
    try:
        return bool(redis_client().exists(lease_key(session_id)))
    except REDIS_ERRORS:
        return None


class Lease:
    """Held while a worker runs a session, renewed by a heartbeat; it expires if the worker dies."""

    def __init__(self, session_id: str, ttl: int | None = None) -> None:
        self.session_id = session_id
        self.ttl = ttl or int(settings.BO1_LEASE_TTL)
        self._lock = redis_client().lock(
            lease_key(session_id), timeout=self.ttl, blocking=False, thread_local=False
        )
        self._stop = threading.Event()
        self._lost = False
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        try:
            acquired = bool(self._lock.acquire(blocking=False))
        except REDIS_ERRORS as exc:
            logger.error("Cannot take the lease on session %s: %s", self.session_id, exc)
            return False
        if acquired:
            self._beat = threading.Thread(
                target=self._heartbeat, name=f"lease-{self.session_id}", daemon=True
            )
            self._beat.start()
        return acquired

    def held(self) -> bool:
        return not self._lost

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(self.ttl / 3, 0.2)):
            try:
                self._lock.reacquire()
            except LockError:
                logger.warning("Lease on session %s was taken over", self.session_id)
                self._lost = True
                return
            except REDIS_ERRORS as exc:  # Redis away: keep working, try again next beat
                logger.warning("Lease heartbeat for session %s failed: %s", self.session_id, exc)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            self._lock.release()
        except (LockError, *REDIS_ERRORS):
            pass
