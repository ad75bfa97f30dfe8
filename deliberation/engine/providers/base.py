"""The contract every model backend honours: one completion call, its result and its errors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

ROLES: tuple[str, ...] = (
    "decomposer",
    "selector",
    "persona",
    "facilitator",
    "moderator",
    "voter",
    "synthesizer",
)

ERROR_CODES: tuple[str, ...] = ("provider_error", "timeout", "auth")

REDACTED = "[redacted]"

# Key shapes used by the big hosted APIs; scrubbed even when the key was not configured here,
# because an SDK may have picked one up from the environment and echoed it in an error body.
_KEY_PATTERN = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}")


@dataclass(frozen=True)
class Completion:
    """One model answer with the token counts its cost is computed from.

    `input_tokens` counts every prompt token, cached or not; `cached_tokens` is the part read
    from a prompt cache and `cache_write_tokens` the part written to it (Anthropic bills a
    premium for writes).
    """

    text: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    model: str
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@runtime_checkable
class Provider(Protocol):
    """A model backend the engine can ask for one completion at a time."""

    name: str

    def complete(
        self, *, role: str, system: str, prompt: str, max_tokens: int, json_mode: bool
    ) -> Completion: ...


class ProviderError(Exception):
    """A model call that failed for good (after the SDK's own retries)."""

    def __init__(self, code: str, message: str) -> None:
        # Both values go to Exception.args so the error survives pickling (Celery results).
        super().__init__(code, message)
        self.code = code if code in ERROR_CODES else "provider_error"
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def scrub_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return `text` with every given secret and anything shaped like an API key removed."""
    for secret in secrets:
        # Very short values would blank out ordinary words; real keys are long.
        if secret and len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return _KEY_PATTERN.sub(REDACTED, text)


def estimate_tokens(text: str) -> int:
    """Rough token count (about four characters a token) for backends that report none."""
    return max(1, (len(text) + 3) // 4) if text else 0
