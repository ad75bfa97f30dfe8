"""The fan-out hub: one Redis reader per process follows every session streamed from it."""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from bo1site.serving import jsoncodec

from ...cache import REDIS_ERRORS, stream_key
from .wire import LiveEvent

logger = logging.getLogger(__name__)

# How long the shared reader blocks in XREAD; a session whose stream starts meanwhile joins the
# next read, so this bounds the extra delay of its first live events.
HUB_BLOCK_MS = 1000
HUB_READ_COUNT = 500
# A subscriber that falls this far behind drops Redis entries and catches up from PostgreSQL.
MAX_PENDING = 1000


def poll_seconds() -> float:
    """How often a stream asks PostgreSQL while Redis cannot be read."""
    return float(settings.BO1_STREAM_POLL_SECONDS)


class Subscription:
    """One open stream's inbox: events the hub read from Redis, and a wake-up flag.

    The stream waits on one bare future with a timer: a thousand streams wake for every event
    batch, and `asyncio.wait_for` on an `asyncio.Event` costs a task and two more futures per
    wait.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.overflowed = False
        self._events: list[dict[str, Any]] = []
        self._ready = False
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, event: dict[str, Any]) -> None:
        if len(self._events) >= MAX_PENDING:
            self.overflowed = True
        else:
            self._events.append(event)
        self.nudge()

    def nudge(self) -> None:
        self._ready = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until something is delivered or nudged, or `timeout` seconds have passed."""
        if self._ready or timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        self._ready = False
        return events


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class StreamHub:
    """Follows every session streamed by this process with one XREAD BLOCK on one connection.

    Open streams cost no Redis connection each; the hub keeps a cursor per session and fans each
    entry out to the subscriptions of that session. There is one hub per event loop, which under
    the ASGI server means one per process.
    """

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._client: aioredis.Redis | None = None
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._cursors: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        # False while Redis cannot be read: subscriptions then poll PostgreSQL instead.
        self.available = True

    def subscribe(self, session_id: str, after: int) -> Subscription:
        subscription = Subscription(session_id)
        self._subscriptions.setdefault(session_id, set()).add(subscription)
        # A late joiner that is behind pulls the cursor back; the others drop the repeats.
        self._cursors[session_id] = min(self._cursors.get(session_id, after), after)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="sse-hub")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._subscriptions.get(subscription.session_id)
        if subscriptions is None:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._subscriptions[subscription.session_id]
            self._cursors.pop(subscription.session_id, None)

    @property
    def subscription_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            connect_timeout = float(settings.REDIS_SOCKET_TIMEOUT)
            self._client = aioredis.Redis.from_url(
                self._redis_url,
                decode_responses=True,
                socket_connect_timeout=connect_timeout,
                # A blocking read legitimately waits HUB_BLOCK_MS before answering.
                socket_timeout=HUB_BLOCK_MS / 1000 + max(connect_timeout, 1.0) + 2,
                health_check_interval=30,
            )
        return self._client

    async def _follow(self) -> None:
        try:
            while self._subscriptions:
                try:
                    await self._read_once()
                except REDIS_ERRORS as exc:
                    self._set_available(False, exc)
                    await asyncio.sleep(poll_seconds())
                except Exception:  # never let the reader die: streams would silently stall
                    logger.exception("Event stream reader failed; retrying")
                    self._set_available(False, None)
                    await asyncio.sleep(poll_seconds())
        finally:
            self._task = None
            client, self._client = self._client, None
            if client is not None:
                await client.aclose()

    def _set_available(self, available: bool, exc: BaseException | None) -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            logger.info("Redis is readable again; live event streams follow it")
        else:
            logger.warning("Redis unreadable (%s); event streams poll PostgreSQL", exc)
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.nudge()

    async def _read_once(self) -> None:
        started = dict(self._cursors)
        keys = {stream_key(session_id): session_id for session_id in started}
        reply = await self._redis().xread(
            {key: f"{started[session_id]}-0" for key, session_id in keys.items()},
            count=HUB_READ_COUNT,
            block=HUB_BLOCK_MS,
        )
        self._set_available(True, None)
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        for key, entries in items:
            session_id = keys.get(key)
            if session_id is None:
                continue
            newest = started[session_id]
            for _entry_id, fields in entries:
                try:
                    event = LiveEvent(jsoncodec.loads(fields["event"]))
                    newest = max(newest, int(event["sequence"]))
                except (KeyError, TypeError, ValueError):
                    # The subscriber sees a gap and reads the event from PostgreSQL.
                    logger.warning("Skipping malformed stream entry %s in %s", _entry_id, key)
                    continue
                for subscription in self._subscriptions.get(session_id, ()):
                    subscription.deliver(event)
            # Only advance a cursor nobody pulled back while this read was in flight.
            if self._cursors.get(session_id) == started[session_id]:
                self._cursors[session_id] = newest


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = weakref.WeakKeyDictionary()


def stream_hub() -> StreamHub:
    """This event loop's hub (connections belong to a loop, so each loop has its own)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = StreamHub(settings.CACHES["default"]["LOCATION"])
    return hub
