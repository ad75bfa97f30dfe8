"""Many concurrent SSE clients on raw asyncio streams: how long each event takes to arrive.

Run as a child process: opens `--streams` connections to GET /api/v1/sessions/{id}/stream spread
over the given sessions, prints `{"connected": N}` once all answered 200, then reads until told to
stop (a line on stdin) and prints one JSON summary: delivery delay (arrival minus the event's
`created_at`) percentiles, and per-stream gaps or repeats in the sequence numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from datetime import datetime
from typing import Any

import orjson
import uvloop


class StreamStats:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.samples: list[tuple[float, float]] = []  # (created_at, delay in ms)
        self.events = 0
        self.gaps = 0
        self.repeats = 0
        self.errors: list[str] = []
        self.last_seen: dict[int, int] = {}


async def follow(
    index: int, host: str, port: int, path: str, token: str, stats: StreamStats, ready: Any
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    except OSError as exc:
        stats.errors.append(f"connect: {exc}")
        ready()
        return
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Token {token}\r\nCache-Control: no-cache\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        stats.errors.append(f"status: {status.decode(errors='replace').strip()}")
        ready()
        writer.close()
        return
    chunked = False
    while True:  # headers
        line = await reader.readline()
        if line.lower().startswith(b"transfer-encoding: chunked"):
            chunked = True
        if line in (b"\r\n", b""):
            break
    ready()
    last = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            if chunked and not line.startswith((b"id:", b"event:", b"data:", b":")):
                continue  # chunk-size lines and the blank lines between frames
            if line.startswith(b"data:"):
                arrived = time.time()
                event = orjson.loads(line[5:])
                created = datetime.fromisoformat(event["created_at"]).timestamp()
                stats.delays.append(arrived - created)
                stats.samples.append((round(created, 4), round((arrived - created) * 1000, 2)))
                stats.events += 1
                sequence = int(event["sequence"])
                if sequence <= last:
                    stats.repeats += 1
                elif sequence != last + 1:
                    stats.gaps += 1
                last = max(last, sequence)
                stats.last_seen[index] = last
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stats.errors.append(f"read: {exc}")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.ids) as f:
        ids = json.load(f)
    stats = StreamStats()
    connected = 0
    all_ready = asyncio.Event()

    def ready() -> None:
        nonlocal connected
        connected += 1
        if connected >= args.streams:
            all_ready.set()

    tasks = []
    for n in range(args.streams):
        path = f"/api/v1/sessions/{ids[n % len(ids)]}/stream"
        tasks.append(
            asyncio.create_task(follow(n, args.host, args.port, path, args.token, stats, ready))
        )
        if n % 50 == 49:
            await asyncio.sleep(0.05)  # open them in waves, as browsers arriving would
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_ready.wait(), timeout=120)
    sys.stdout.write(json.dumps({"connected": connected, "errors": len(stats.errors)}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.sleep(args.drain)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays_ms = [d * 1000 for d in stats.delays]
    per_stream = {str(k): v for k, v in stats.last_seen.items()}
    return {
        "streams": args.streams,
        "sessions": len(ids),
        "connected_ok": args.streams
        - len([e for e in stats.errors if e.startswith(("connect", "status"))]),
        "events_received": stats.events,
        "gaps": stats.gaps,
        "repeats": stats.repeats,
        "errors": stats.errors[:20],
        "error_count": len(stats.errors),
        "delay_ms": {
            "p50": round(percentile(delays_ms, 50), 2),
            "p90": round(percentile(delays_ms, 90), 2),
            "p99": round(percentile(delays_ms, 99), 2),
            "max": round(max(delays_ms), 2) if delays_ms else 0.0,
        },
        "last_sequence_per_stream": per_stream,
        "samples": stats.samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ids", required=True, help="JSON file with the session ids")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--drain", type=float, default=1.0, help="seconds to keep reading at stop")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.streams * 2 + 256)), hard))
    # uvloop, as the web server uses: the client shares the machine's 2 cores with what it
    # measures, so the less CPU it takes the less it disturbs the figures.
    result = uvloop.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
