"""Anthropic Messages API provider on the official SDK, with prompt caching of the system text."""

from __future__ import annotations

import logging

import anthropic

from .base import Completion, ProviderError, scrub_secrets

logger = logging.getLogger(__name__)

JSON_INSTRUCTION = "\n\nAnswer with a single JSON object only."


class AnthropicProvider:
    """Calls Claude models; the SDK retries transient failures with backoff."""

    name = "anthropic"

    def __init__(
        self,
        *,
        models: dict[str, str],
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        self.models = dict(models)
        self._secrets: list[str | None] = [api_key]
        self._client: anthropic.Anthropic | None = None
        self._setup_error: ProviderError | None = None
        try:
            # The SDK reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself when these are None.
            self._client = anthropic.Anthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
            )
        except anthropic.AnthropicError as exc:
            # No key anywhere: the SDK gives up while looking for a credentials profile. Report
            # it on the first call, like every other provider failure.
            self._setup_error = self._error(exc)
        else:
            self._secrets += [self._client.api_key, self._client.auth_token]

    def complete(
        self, *, role: str, system: str, prompt: str, max_tokens: int, json_mode: bool
    ) -> Completion:
        if self._client is None:
            raise self._setup_error or ProviderError("auth", "The Anthropic client is not set up")
        model = self.models[role]
        try:
            message = self._client.messages.create(
                model=model,
                max_tokens=max_tokens,
                # The system text (persona and problem brief) repeats across a session's calls,
                # so it is the part worth caching.
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                messages=[
                    {"role": "user", "content": prompt + (JSON_INSTRUCTION if json_mode else "")}
                ],
            )
        except Exception as exc:  # every SDK failure becomes a ProviderError below
            raise self._error(exc) from None
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        usage = message.usage
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        return Completion(
            text=text,
            # The API counts cache reads and writes apart from the other input tokens.
            input_tokens=usage.input_tokens + cache_read + cache_write,
            output_tokens=usage.output_tokens,
            cached_tokens=cache_read,
            cache_write_tokens=cache_write,
            model=message.model or model,
        )

    def _error(self, exc: Exception) -> ProviderError:
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            code = "auth"
        elif isinstance(
            exc,
            anthropic.APITimeoutError
            | anthropic.RequestTimeoutError
            | anthropic.GatewayTimeoutError,
        ):
            code = "timeout"
        elif isinstance(exc, anthropic.CredentialsError) or (
            isinstance(exc, TypeError) and "authentication" in str(exc).lower()
        ):
            # Raised by the SDK when no key or token is configured at all.
            code = "auth"
        else:
            code = "provider_error"
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        status = getattr(exc, "status_code", None)
        detail = f"Anthropic API error{f' {status}' if status else ''}: {message}"
        error = ProviderError(code, scrub_secrets(detail, self._secrets))
        logger.warning("Anthropic call failed (%s): %s", error.code, error.message)
        return error
