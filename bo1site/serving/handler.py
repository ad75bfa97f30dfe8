"""Django's ASGI handler with sync views served the way a threaded WSGI server serves them.

Stock Django runs each request under ASGI in a thread of its own (`ThreadSensitiveContext`) and
hops between that thread and the event loop several times per request; the thread dies with the
request, so its database connection cannot be kept (CONN_MAX_AGE has to be 0) and every request
opens a new PostgreSQL connection. Here a request whose view is synchronous (the REST API, admin,
dashboard) runs start to finish in one hop on a fixed pool of long-lived threads, through the
same middleware in its sync form, exactly as under WSGI: each thread keeps its connection between
requests, and Django's request_started/request_finished housekeeping (CONN_MAX_AGE,
CONN_HEALTH_CHECKS) runs in that thread. Every view here is synchronous: the event stream too,
whose body is an async generator that runs on the event loop once the view has returned. (An
async view would still work: Django's sync handler runs it with async_to_sync, holding a pool
thread while it runs.) Websocket and lifespan scopes go to Django's own handler unchanged.

Measured (docs/PERFORMANCE-HISTORY.md, "Worker model"): the list 42 -> about 80 requests/s and
its one-client p50 46 -> 10 ms, server CPU per list request 13.7 -> 7.5 ms, before the other
changes. Wired in by bo1site/asgi.py; WEB_THREADS sets the pool's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpResponseBase
from django.urls import set_script_prefix

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 4


def sync_threads() -> int:
    """Threads per process for sync views (WEB_THREADS), like gunicorn's gthread `--threads`."""
    return max(1, int(os.environ.get("WEB_THREADS", DEFAULT_THREADS)))


class PooledASGIHandler(ASGIHandler):
    """ASGI entry point: every HTTP request's view on a pool of persistent threads."""

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()  # the async middleware chain, for async views
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        self._threads = threads or sync_threads()
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="django-sync")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._handle_in_pool(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _respond(self, scope: dict[str, Any], body_file: SpooledTemporaryFile) -> HttpResponseBase:
        """The whole request cycle, in a pool thread (what WSGIHandler.__call__ does)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            response = error_response
        else:
            response = self._sync.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
        if not response.streaming:
            # The body is complete: finish the request here, in the thread that owns its
            # database connection (request_finished closes it when it is too old or broken).
            response.close()
            body_file.close()
        return response

    def _in_pool(
        self, loop: asyncio.AbstractEventLoop, scope: dict[str, Any], body_file: Any
    ) -> asyncio.Future[HttpResponseBase]:
        """_respond on a pool thread; its result comes back with one call_soon_threadsafe.

        (loop.run_in_executor chains a concurrent future to an asyncio one, which costs a
        measurable share of a small request's CPU.)
        """
        future: asyncio.Future[HttpResponseBase] = loop.create_future()

        def settle(result: HttpResponseBase | None, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            try:
                result = self._respond(scope, body_file)
            except BaseException as exc:  # handed to the awaiting request, not swallowed
                body_file.close()
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        self._executor.submit(work)
        return future

    async def _handle_in_pool(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        # The pool thread closes the request body once a complete response is built; even if
        # this coroutine is cancelled meanwhile, the thread finishes with the body it was given.
        response = await self._in_pool(loop, scope, body_file)
        if not response.streaming:
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return
        try:
            # A streaming body from a sync view: stop sending when the client goes away.
            tasks = [
                asyncio.create_task(self.listen_for_disconnect(receive)),
                asyncio.create_task(self.send_response(response, send)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task
            await loop.run_in_executor(self._executor, response.close)
        finally:
            body_file.close()


def get_pooled_asgi_application() -> PooledASGIHandler:
    """Like django.core.asgi.get_asgi_application, with sync views on the thread pool."""
    import django

    django.setup(set_prefix=False)
    return PooledASGIHandler()
