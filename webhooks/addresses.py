"""Where a webhook may be sent: http(s) URLs whose host resolves to public addresses only.

The check runs when an endpoint is registered and again at every delivery, on the addresses
the connection is actually made to (DNS can change between the two, or between a check and a
connect), unless BO1_WEBHOOK_ALLOW_PRIVATE is set for tests and on-premises receivers.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpcore
from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")


class AddressNotAllowed(Exception):
    """The URL, or an address its host resolves to, is not a place webhooks may go."""


def address_refusal(address: str) -> str | None:
    """Why `address` may not receive webhooks, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not a public"),
    )
    for failed, kind in checks:
        if failed:
            return f"{address} is a {kind} address"
    return None


def private_allowed() -> bool:
    return bool(settings.BO1_WEBHOOK_ALLOW_PRIVATE)


def lookup(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now, as the system resolver answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_allowed(host: str, port: int) -> list[str]:
    """The addresses of `host` webhooks may connect to; AddressNotAllowed when any is refused.

    Every address must pass: a name that resolves to a public and a private address is refused,
    since the connection could be made to either.
    """
    try:
        addresses = lookup(host, port)
    except (OSError, UnicodeError) as exc:
        raise AddressNotAllowed(f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise AddressNotAllowed(f"{host} does not resolve")
    if not private_allowed():
        for address in addresses:
            refusal = address_refusal(address)
            if refusal:
                raise AddressNotAllowed(f"{host} resolves to {refusal}")
    return addresses


def check_url(url: str) -> None:
    """Raise AddressNotAllowed with the reason when `url` may not receive webhooks."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise AddressNotAllowed("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise AddressNotAllowed("The URL has no host.")
    if parts.username or parts.password:
        raise AddressNotAllowed("Credentials in the URL are not accepted; use the signature.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressNotAllowed("The URL's port is not valid.") from None
    resolve_allowed(parts.hostname, port)


class GuardedNetworkBackend(httpcore.SyncBackend):
    """Connects only to addresses that pass the check, resolved at the moment of connecting.

    TLS still verifies and sends SNI for the URL's host name: httpcore starts TLS on the stream
    with the origin's host, not the address connected to.
    """

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for address in resolve_allowed(host, port):
            try:
                return super().connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"cannot connect to {host}")
