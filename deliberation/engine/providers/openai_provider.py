"""OpenAI chat completions provider on the official SDK; base_url reaches compatible servers."""

from __future__ import annotations

import logging
import os

import openai

from .base import Completion, ProviderError, estimate_tokens, scrub_secrets

logger = logging.getLogger(__name__)

# Local OpenAI-compatible servers (Ollama, vLLM) ignore the key, but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"


class OpenAIProvider:
    """Calls OpenAI or any OpenAI-compatible server; the SDK retries transient failures."""

    name = "openai"

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
        key = api_key or os.environ.get("OPENAI_API_KEY")
        custom_server = base_url or os.environ.get("OPENAI_BASE_URL")
        self._missing_key = not key and not custom_server
        self._client = openai.OpenAI(
            api_key=key or PLACEHOLDER_KEY,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._secrets = [key]

    def complete(
        self, *, role: str, system: str, prompt: str, max_tokens: int, json_mode: bool
    ) -> Completion:
        if self._missing_key:
            raise ProviderError("auth", "No OpenAI API key is configured (OPENAI_API_KEY)")
        model = self.models[role]
        try:
            response = self._client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ],
                # max_tokens rather than max_completion_tokens: compatible servers know it.
                max_tokens=max_tokens,
                response_format={"type": "json_object"} if json_mode else openai.omit,
            )
        except Exception as exc:  # every SDK failure becomes a ProviderError below
            raise self._error(exc) from None
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice else None) or ""
        usage = response.usage
        if usage is None:
            # Some compatible servers omit usage; estimate so budgets still apply.
            input_tokens = estimate_tokens(system) + estimate_tokens(prompt)
            output_tokens, cached = estimate_tokens(text), 0
        else:
            input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
            details = usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details else 0
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            model=response.model or model,
        )

    def _error(self, exc: Exception) -> ProviderError:
        status = getattr(exc, "status_code", None)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            code = "auth"
        elif isinstance(exc, openai.APITimeoutError) or status in (408, 504):
            code = "timeout"
        else:
            code = "provider_error"
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        detail = f"OpenAI API error{f' {status}' if status else ''}: {message}"
        error = ProviderError(code, scrub_secrets(detail, self._secrets))
        logger.warning("OpenAI call failed (%s): %s", error.code, error.message)
        return error
