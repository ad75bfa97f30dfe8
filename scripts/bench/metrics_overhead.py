"""`python -m scripts.bench.metrics_overhead`: CPU the metrics middleware adds to one request.

Calls observability.middleware.MetricsMiddleware around a prepared list request (resolved, with
a ready response) many times in one process, in prometheus-client's multiprocess mode as the
production server runs it, and prints the CPU time per call with and without the middleware.
Unlike a throughput run it is not moved by other load on the machine (see docs/OPERATIONS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bo1-metrics-overhead-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # before prometheus_client loads
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.http import HttpResponse
        from django.test import RequestFactory
        from django.urls import resolve

        from observability.middleware import MetricsMiddleware

        request = RequestFactory().get("/api/v1/sessions")
        request.resolver_match = resolve("/api/v1/sessions")
        response = HttpResponse(b"{}", content_type="application/json")

        def view(_request: object) -> HttpResponse:
            return response

        for label, handler in (
            ("without metrics", view),
            ("with metrics", MetricsMiddleware(view)),
        ):
            handler(request)
            started = time.process_time()
            for _ in range(args.calls):
                handler(request)
            per_call = (time.process_time() - started) / args.calls * 1e6
            print(f"{label}: {per_call:.2f} µs CPU per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
