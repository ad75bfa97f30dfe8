"""The persona library and the discussion moderators, read from data/personas.json."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

PERSONA_FIELDS: tuple[str, ...] = (
    "code",
    "name",
    "archetype",
    "domain",
    "expertise",
    "traits",
    "system_prompt",
)

MODERATOR_CODES: tuple[str, ...] = ("contrarian", "skeptic", "optimist")


@lru_cache(maxsize=1)
def _library() -> dict[str, Any]:
    raw = resources.files(__package__).joinpath("data").joinpath("personas.json").read_text("utf-8")
    data = json.loads(raw)
    for entry in [*data["personas"], *data["moderators"]]:
        missing = [field for field in PERSONA_FIELDS if not entry.get(field)]
        if missing:
            raise ValueError(f"Persona {entry.get('code')!r} lacks {', '.join(missing)}")
    return data


def load_personas() -> list[dict[str, Any]]:
    """Every board persona: code, name, archetype, domain, expertise, traits, system_prompt."""
    # Callers get their own copy so that nobody can edit the shared, cached library.
    return copy.deepcopy(_library()["personas"])


def load_moderators() -> dict[str, dict[str, Any]]:
    """The discussion moderators (contrarian, skeptic, optimist) by code."""
    return {entry["code"]: copy.deepcopy(entry) for entry in _library()["moderators"]}


def persona_summary(persona: dict[str, Any]) -> dict[str, Any]:
    """The persona fields a checkpoint keeps, so a resumed run needs no library lookup."""
    return {field: copy.deepcopy(persona.get(field)) for field in PERSONA_FIELDS}
