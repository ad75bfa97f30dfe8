"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from .models import SECRET_PREFIX


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: its base64 part, decoded."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], webhook_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` value: one signature per secret, separated by spaces."""
    return " ".join(signature(secret, webhook_id, timestamp, body) for secret in secrets)


def signed_headers(
    secrets: Iterable[str], webhook_id: str, timestamp: int, body: str
) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, webhook_id, timestamp, body),
    }
