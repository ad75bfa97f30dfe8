"""Gunicorn settings of the web server (`gunicorn -c python:observability.gunicorn_config`).

The master prepares PROMETHEUS_MULTIPROC_DIR before any worker starts (and before any of them
imports prometheus_client), so /metrics adds up every worker process; a worker that exits is
forgotten by the live gauges. A directory made here is removed when the master exits. With
BO1_LOG_FORMAT=json gunicorn's and uvicorn's log lines are JSON like the application's.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from observability import logs, multiprocess

_dir, _made = multiprocess.prepare("bo1-web-metrics-")


class JsonLogger(Logger):
    """Gunicorn's logger with JSON lines; uvicorn's loggers reuse its handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        logs.use_json(("gunicorn.error", "gunicorn.access"))


if logs.json_logs_wanted():
    logger_class = JsonLogger


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess as prometheus_multiprocess

    prometheus_multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made:
        multiprocess.remove(_dir)
