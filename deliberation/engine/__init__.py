"""The deliberation engine: plain Python, no Django. A board of personas deliberates a problem."""

from .engine import Deliberation, EngineHost, Outcome
from .personas import load_moderators, load_personas
from .pricing import DEFAULT_MODELS, PRICES, completion_cost
from .providers import Completion, Provider, ProviderError, make_provider

__all__ = [
    "DEFAULT_MODELS",
    "PRICES",
    "Completion",
    "Deliberation",
    "EngineHost",
    "Outcome",
    "Provider",
    "ProviderError",
    "completion_cost",
    "load_moderators",
    "load_personas",
    "make_provider",
]
