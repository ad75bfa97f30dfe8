"""Filters of the Markdown transcript (deliberation/transcript.md)."""

from __future__ import annotations

from typing import Any

from django import template

from deliberation.transcript import phase_cost_text, usd

register = template.Library()

register.filter("usd", usd)
register.filter("phase_cost", phase_cost_text)


@register.filter
def blockquote(text: str) -> str:
    """Every line quoted (`> `), empty lines as a bare `>`."""
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines()) or ">"


@register.filter
def consensus(level: Any) -> str:
    """A consensus level: a share as a percentage, a word as it is."""
    if isinstance(level, int | float) and not isinstance(level, bool) and 0 <= level <= 1:
        return f"{round(level * 100)}%"
    return str(level)


@register.filter
def strip(text: str) -> str:
    return text.strip()
