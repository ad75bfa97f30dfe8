"""The Celery worker's metrics: shared by its pool processes, served on BO1_WORKER_METRICS_PORT.

`connect()` is called from bo1site/celery.py, the first module `celery -A bo1site worker` loads:
in the worker's main process it prepares the multiprocess directory there and then, because
Celery loads Django (and so prometheus_client) before it sends any of its start-up signals.
With the port unset the worker serves no metrics and keeps them in each process's memory.
"""

from __future__ import annotations

import hmac
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from . import multiprocess

logger = logging.getLogger(__name__)

PORT_VARIABLE = "BO1_WORKER_METRICS_PORT"
ADDR_VARIABLE = "BO1_WORKER_METRICS_ADDR"
_state: dict[str, Any] = {}


def configured_port() -> int | None:
    value = os.environ.get(PORT_VARIABLE, "").strip()
    return int(value) if value else None


def is_worker_command() -> bool:
    """True in the main process of `celery ... worker` (not in the web server, a shell, tests)."""
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    started_by_celery = program == "celery" or sys.argv[0].endswith("celery/__main__.py")
    return started_by_celery and "worker" in sys.argv[1:]


def prepare() -> None:
    """In the worker's main process, before its pool starts: a private metrics directory."""
    if configured_port() is None:
        # Never write into a directory a web server in the same environment prepared.
        os.environ.pop(multiprocess.VARIABLE, None)
        return
    path, _ = multiprocess.prepare("bo1-worker-metrics-", reuse_configured=False)
    _state["dir"] = path


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    from prometheus_client import CONTENT_TYPE_LATEST

    from .exposition import render, worker_registry

    token = os.environ.get("BO1_METRICS_TOKEN", "")
    given = environ.get("HTTP_AUTHORIZATION", "")
    if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="metrics"')])
        return [b"A valid bearer token is needed for /metrics.\n"]
    if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found: the metrics are at /metrics.\n"]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [render(worker_registry())]


def serve(**kwargs: Any) -> None:
    """Once the worker is ready, its main process answers scrapes in a thread."""
    json_logs()  # the pool's loggers are set up by now
    port = configured_port()
    if port is None:
        return
    from prometheus_client.exposition import ThreadingWSGIServer

    addr = os.environ.get(ADDR_VARIABLE, "127.0.0.1")
    try:
        server = make_server(addr, port, _app, ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:  # the worker still works; only its metrics are not served
        logger.error("Worker metrics not served on %s:%d: %s", addr, port, exc)
        return
    threading.Thread(target=server.serve_forever, name="bo1-worker-metrics", daemon=True).start()
    _state["server"] = server
    logger.info("Worker metrics on http://%s:%d/metrics", addr, server.server_port)


def forget_process(pid: int | None = None, **kwargs: Any) -> None:
    """A pool process that exits stops counting in the live gauges."""
    if multiprocess.enabled():
        from prometheus_client import multiprocess as prometheus_multiprocess

        prometheus_multiprocess.mark_process_dead(pid or os.getpid())


def stop(**kwargs: Any) -> None:
    server = _state.pop("server", None)
    if server is not None:
        server.shutdown()
    path: Path | None = _state.pop("dir", None)
    if path is not None:
        multiprocess.remove(path)


def json_logs(**kwargs: Any) -> None:
    """With BO1_LOG_FORMAT=json, Celery's own handlers write JSON lines too."""
    from . import logs

    if logs.json_logs_wanted():
        logs.use_json(("celery", "celery.task", "celery.redirected"))


def json_worker(instance: Any = None, **kwargs: Any) -> None:
    """With BO1_LOG_FORMAT=json, no banner, and Celery's printed notices as JSON lines."""
    from celery.apps import worker as celery_worker

    from . import logs

    if not logs.json_logs_wanted():
        return
    if instance is not None:
        instance.quiet = True

    def say(message: str, f: Any = sys.__stderr__) -> None:
        # What Celery prints from its signal handlers ("worker: Warm shutdown", ...).
        print(logs.json_line(message, "celery.apps.worker"), file=f, flush=True)

    celery_worker.safe_say = say  # type: ignore[assignment]


def connect() -> None:
    celeryd_init.connect(json_worker, dispatch_uid="observability.worker.json_worker", weak=False)
    after_setup_logger.connect(json_logs, dispatch_uid="observability.worker.json", weak=False)
    after_setup_task_logger.connect(
        json_logs, dispatch_uid="observability.worker.json_task", weak=False
    )
    if not is_worker_command():
        return
    prepare()
    worker_ready.connect(serve, dispatch_uid="observability.worker.serve", weak=False)
    worker_process_shutdown.connect(
        forget_process, dispatch_uid="observability.worker.forget", weak=False
    )
    worker_shutdown.connect(stop, dispatch_uid="observability.worker.stop", weak=False)
