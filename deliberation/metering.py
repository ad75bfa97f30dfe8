"""Counts every model call in the metrics, around the provider the engine is given.

The engine stays plain Python: it calls `complete` as on any provider, and this wrapper, built
by the runner, records the call's outcome, tokens and cost (bo1_llm_*).
"""

from __future__ import annotations

from typing import Any

from observability import metrics

from .engine import Completion, Provider, ProviderError, completion_cost


class MeteredProvider:
    """A provider whose calls are counted; everything else is the wrapped provider's."""

    def __init__(self, inner: Provider) -> None:
        self._inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def complete(
        self, *, role: str, system: str, prompt: str, max_tokens: int, json_mode: bool
    ) -> Completion:
        model = str(getattr(self._inner, "models", {}).get(role, "unknown"))
        try:
            completion = self._inner.complete(
                role=role, system=system, prompt=prompt, max_tokens=max_tokens, json_mode=json_mode
            )
        except ProviderError as exc:
            metrics.LLM_REQUESTS.labels(self.name, model, exc.code).inc()
            raise
        except Exception:
            metrics.LLM_REQUESTS.labels(self.name, model, "error").inc()
            raise
        model = completion.model or model
        metrics.LLM_REQUESTS.labels(self.name, model, "ok").inc()
        for kind, count in (
            ("input", completion.input_tokens),
            ("output", completion.output_tokens),
            ("cached", completion.cached_tokens),
            ("cache_write", completion.cache_write_tokens),
        ):
            if count:
                metrics.LLM_TOKENS.labels(self.name, model, kind).inc(count)
        metrics.LLM_COST.labels(self.name, model).inc(float(completion_cost(completion)))
        return completion
