"""Default models per provider and role, their prices, and the cost of one completion in USD."""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

from .providers.base import ROLES, Completion

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")

# Anthropic bills prompt-cache writes at 1.25 times the input price; reads are listed below.
CACHE_WRITE_PREMIUM = Decimal("1.25")

OFFLINE_MODEL = "offline-rehearsal"

# model -> (input USD per million tokens, output USD per million, cached input USD per million).
# The offline price is nominal: no money is spent, but it lets budgets and cost reports be
# exercised without a key. It sits close to a small hosted model so the numbers look familiar.
PRICES: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "claude-sonnet-4-6": (Decimal("3.00"), Decimal("15.00"), Decimal("0.30")),
    "claude-sonnet-4-5": (Decimal("3.00"), Decimal("15.00"), Decimal("0.30")),
    "claude-sonnet-4-5-20250929": (Decimal("3.00"), Decimal("15.00"), Decimal("0.30")),
    "claude-haiku-4-5": (Decimal("1.00"), Decimal("5.00"), Decimal("0.10")),
    "claude-haiku-4-5-20251001": (Decimal("1.00"), Decimal("5.00"), Decimal("0.10")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00"), Decimal("1.25")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
    OFFLINE_MODEL: (Decimal("1.00"), Decimal("5.00"), Decimal("0.10")),
}

_CHEAP_ROLES = frozenset({"selector", "facilitator"})

# Sonnet 4.6 rather than 4.5: the SDK lists claude-sonnet-4-5 as reaching end of life on
# 2026-11-30. Both answer without extended thinking unless asked, which the small max_tokens
# of the cheap roles rely on.
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "anthropic": {
        role: "claude-haiku-4-5" if role in _CHEAP_ROLES else "claude-sonnet-4-6" for role in ROLES
    },
    "openai": {role: "gpt-4o-mini" if role in _CHEAP_ROLES else "gpt-4o" for role in ROLES},
    "offline": dict.fromkeys(ROLES, OFFLINE_MODEL),
}

_warned_unpriced: set[str] = set()


def price_for(model: str) -> tuple[Decimal, Decimal, Decimal] | None:
    """Prices for `model`, matching dated snapshots and router prefixes to their family."""
    if model in PRICES:
        return PRICES[model]
    # Routers such as OpenRouter report "openai/gpt-4o"; snapshots add a date suffix.
    bare = model.rsplit("/", 1)[-1]
    candidates = [name for name in PRICES if bare == name or bare.startswith(name + "-")]
    if candidates:
        return PRICES[max(candidates, key=len)]
    return None


def completion_cost(completion: Completion) -> Decimal:
    """USD cost of one completion, quantised to six decimal places."""
    prices = price_for(completion.model)
    if prices is None:
        # Self-hosted models (Ollama, vLLM) have no list price; count tokens, charge nothing.
        if completion.model not in _warned_unpriced:
            _warned_unpriced.add(completion.model)
            logger.warning(
                "No price known for model %r; its calls are counted as free", completion.model
            )
        return Decimal(0).quantize(COST_QUANTUM)
    input_price, output_price, cached_price = prices
    cached = max(0, min(completion.cached_tokens, completion.input_tokens))
    written = max(0, min(completion.cache_write_tokens, completion.input_tokens - cached))
    plain = completion.input_tokens - cached - written
    cost = (
        Decimal(plain) * input_price
        + Decimal(cached) * cached_price
        + Decimal(written) * input_price * CACHE_WRITE_PREMIUM
        + Decimal(completion.output_tokens) * output_price
    ) / MILLION
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
