"""The directory prometheus-client's multiprocess mode shares between a server's processes.

Every process of a server (gunicorn's workers, Celery's pool) writes its metrics to files in
PROMETHEUS_MULTIPROC_DIR, and whichever process answers a scrape adds them up. The variable has
to be set before prometheus_client is first imported in any of them, so the process that starts
the others prepares it: gunicorn's master through observability/gunicorn_config.py, Celery's
main process through observability/worker.py. This module imports no prometheus_client.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(prefix: str, *, reuse_configured: bool = True) -> tuple[Path, bool]:
    """Set PROMETHEUS_MULTIPROC_DIR to an empty directory; returns it and whether we made it.

    A configured directory is emptied (files of an earlier run would be added to this one's);
    without one, a private temporary directory is made.
    """
    if "prometheus_client" in sys.modules:
        logger.warning("prometheus_client was imported before %s was set: metrics of "
                       "this process tree may not be shared", VARIABLE)  # fmt: skip
    configured = os.environ.get(VARIABLE) if reuse_configured else None
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        made = False
    else:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        made = True
    os.environ[VARIABLE] = str(path)
    return path, made


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def enabled() -> bool:
    return bool(os.environ.get(VARIABLE))
