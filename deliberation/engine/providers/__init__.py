"""Model backends for the engine: offline rehearsal, Anthropic and OpenAI-compatible APIs."""

from __future__ import annotations

from .base import ROLES, Completion, Provider, ProviderError, estimate_tokens, scrub_secrets

__all__ = [
    "ROLES",
    "Completion",
    "Provider",
    "ProviderError",
    "estimate_tokens",
    "make_provider",
    "scrub_secrets",
]

PROVIDER_NAMES: tuple[str, ...] = ("offline", "anthropic", "openai")


def make_provider(
    name: str,
    *,
    models: dict[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    max_retries: int = 3,
    offline_latency_ms: int = 0,
) -> Provider:
    """Build the provider called `name`; `models` overrides the default model of some roles.

    Credentials are not checked here: a missing or wrong key surfaces as ProviderError("auth")
    on the first call, so callers handle every provider failure in one place.
    """
    # Imported here so that loading the engine never pulls in an SDK it does not use, and so
    # that pricing (which the backends import) can import this package without a cycle.
    from ..pricing import DEFAULT_MODELS

    key = (name or "").strip().lower()
    if key not in PROVIDER_NAMES:
        raise ValueError(
            f"Unknown LLM provider {name!r}; expected one of {', '.join(PROVIDER_NAMES)}"
        )
    unknown_roles = set(models or {}) - set(ROLES)
    if unknown_roles:
        raise ValueError(f"Unknown roles in models: {', '.join(sorted(unknown_roles))}")
    chosen = {**DEFAULT_MODELS[key], **(models or {})}

    if key == "offline":
        from .offline import OfflineProvider

        return OfflineProvider(models=chosen, latency_ms=offline_latency_ms)
    if key == "anthropic":
        from .anthropic_provider import AnthropicProvider

        return AnthropicProvider(
            models=chosen,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )
    from .openai_provider import OpenAIProvider

    return OpenAIProvider(
        models=chosen, api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )
