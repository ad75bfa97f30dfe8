"""One HTTP attempt at a webhook: no redirects, no proxies, a 4 KB answer, a time limit."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpcore

from .addresses import AddressNotAllowed, GuardedNetworkBackend

MAX_RESPONSE_BYTES = 4096
USER_AGENT = "bo1-webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to; `ok` is a 2xx within the time limit."""

    ok: bool
    status: int | None = None
    body: str = ""
    error: str = ""
    refused: bool = False  # the address check refused the target


def post(url: str, headers: Mapping[str, str], body: str, *, timeout: float) -> AttemptResult:
    """POST `body` to `url`; any redirect is an answer like another (not followed)."""
    deadline = time.monotonic() + timeout
    request_headers: list[tuple[bytes | str, bytes | str]] = [
        *headers.items(),
        ("content-type", "application/json"),
        ("user-agent", USER_AGENT),
    ]
    try:
        # A pool per attempt: a connection is made (and its address checked) for each delivery.
        with (
            httpcore.ConnectionPool(network_backend=GuardedNetworkBackend(), retries=0) as pool,
            pool.stream(
                "POST",
                url,
                headers=request_headers,
                content=body.encode(),
                extensions={
                    "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": 1}
                },
            ) as response,
        ):
            received = bytearray()
            for chunk in response.iter_stream():
                received += chunk
                if len(received) >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break
            status = response.status
            text = bytes(received[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace")
    except AddressNotAllowed as exc:
        return AttemptResult(ok=False, error=str(exc), refused=True)
    except httpcore.TimeoutException:
        return AttemptResult(ok=False, error=f"no answer within {timeout:g} s")
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        return AttemptResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    if time.monotonic() > deadline:
        return AttemptResult(
            ok=False, status=status, body=text, error=f"answer took longer than {timeout:g} s"
        )
    ok = 200 <= status < 300
    return AttemptResult(ok=ok, status=status, body=text, error="" if ok else f"HTTP {status}")
