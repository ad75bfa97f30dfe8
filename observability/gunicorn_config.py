"""Gunicorn settings of the web server (`gunicorn -c python:observability.gunicorn_config`).

The master prepares PROMETHEUS_MULTIPROC_DIR before any worker starts (and before any of them
imports prometheus_client), so /metrics adds up every worker process; a worker that exits is
forgotten by the live gauges. A directory made here is removed when the master exits.
"""

from __future__ import annotations

from typing import Any

from observability import multiprocess

_dir, _made = multiprocess.prepare("bo1-web-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess as prometheus_multiprocess

    prometheus_multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made:
        multiprocess.remove(_dir)
