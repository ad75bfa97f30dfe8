"""Drive a server with wrk (Debian's package) and read back what it measured."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
WRK_THREADS = 2


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when it is missing (the machine's package)."""
    found = shutil.which("wrk")
    if found:
        return found
    logger.info("installing wrk with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, capture_output=True
    )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: wrk is not installed and apt-get could not install it")
    return found


@dataclass
class LoadResult:
    """One wrk run: throughput and latency percentiles in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    mean: float
    max: float
    errors: int
    connections: int
    rate: float  # the paced total rate, 0 when unpaced

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def run_wrk(
    base: str,
    paths: list[str],
    *,
    token: str = "",
    seconds: float = 10.0,
    connections: int = 8,
    method: str = "GET",
    body: str = "",
    rate: float = 0.0,
    threads: int = WRK_THREADS,
    random_arrivals: bool = False,
) -> LoadResult:
    """Run wrk against `base` cycling through `paths`; rate > 0 paces it to that many req/s.

    Paced requests arrive evenly spread, or with `random_arrivals` at random instants (a
    Poisson process) at the same mean rate.
    """
    wrk = ensure_wrk()
    threads = min(threads, connections)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        paths_file = Path(tmp) / "paths"
        paths_file.write_text("\n".join(paths) + "\n")
        out = Path(tmp) / "out.json"
        # What wrk.lua reads: the requests to send, the pacing and where to write its figures.
        env = {
            **os.environ,
            "BENCH_PATHS": str(paths_file),
            "BENCH_TOKEN": token,
            "BENCH_METHOD": method,
            "BENCH_BODY": body,
            "BENCH_RATE": str(rate),
            "BENCH_ARRIVALS": "random" if random_arrivals else "even",
            "BENCH_THREADS": str(threads),
            "BENCH_OUT": str(out),
        }
        argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s",
                "--timeout", "10s", "-s", str(WRK_SCRIPT), base]  # fmt: skip
        completed = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if completed.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed: {completed.stdout}\n{completed.stderr}")
        raw = json.loads(out.read_text())
    return _result(raw, connections, rate)


def _result(raw: dict[str, Any], connections: int, rate: float) -> LoadResult:
    """What wrk.lua wrote (microseconds), as a LoadResult (milliseconds)."""
    latency = raw["latency_us"]
    duration = raw["duration_us"] / 1e6
    return LoadResult(
        requests=raw["requests"],
        seconds=round(duration, 2),
        rps=raw["requests"] / duration if duration else 0.0,
        p50=latency["p50"] / 1000,
        p90=latency["p90"] / 1000,
        p95=latency["p95"] / 1000,
        p99=latency["p99"] / 1000,
        p999=latency["p999"] / 1000,
        mean=latency["mean"] / 1000,
        max=latency["max"] / 1000,
        errors=sum(raw["errors"].values()),
        connections=connections,
        rate=rate,
    )
