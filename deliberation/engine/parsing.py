"""Tolerant readers for model output: JSON buried in prose, loose numbers, lists and labels."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

_WORD_CONFIDENCE = {
    "very high": 0.9,
    "high": 0.8,
    "medium": 0.6,
    "moderate": 0.6,
    "low": 0.35,
    "very low": 0.2,
}


def extract_json(text: str) -> Any | None:
    """The first JSON object or array found in `text`, or None.

    Models wrap JSON in code fences, lead with a sentence or trail with commentary; each
    candidate is tried in turn and the first that decodes wins.
    """
    if not text:
        return None
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(stripped))]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for index, char in enumerate(stripped):
        if char in "{[":
            try:
                value, _ = decoder.raw_decode(stripped, index)
            except ValueError:
                continue
            if isinstance(value, dict | list):
                return value
    return None


def extract_object(text: str) -> dict[str, Any] | None:
    """Like extract_json but only a JSON object counts (a one-object list is unwrapped)."""
    value = extract_json(text)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    return value if isinstance(value, dict) else None


def first_key(data: dict[str, Any], *names: str) -> Any | None:
    """Value of the first of `names` present in `data`, comparing keys case-insensitively."""
    lowered = {
        str(key).lower().replace("-", "_").replace(" ", "_"): value for key, value in data.items()
    }
    for name in names:
        if name in lowered and lowered[name] not in (None, ""):
            return lowered[name]
    return None


def as_text(value: Any, limit: int = 2000) -> str:
    """A clean one-string rendering of a loosely typed field."""
    if value is None:
        return ""
    if isinstance(value, list):
        text = "; ".join(as_text(item, limit) for item in value if item not in (None, ""))
    elif isinstance(value, dict):
        text = as_text(first_key(value, "text", "content", "value", "description"), limit)
    else:
        text = str(value)
    text = text.strip()
    return text[:limit].rstrip() if len(text) > limit else text


def as_text_list(value: Any, limit: int = 8) -> list[str]:
    """A list of short strings from a list, a string with separators, or nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = re.split(r"\n|;|\u2022", value)
    elif isinstance(value, list | tuple):
        parts = [as_text(item, 400) for item in value]
    else:
        parts = [as_text(value, 400)]
    cleaned = [re.sub(r"^[\s\-*\d.)]+", "", part).strip() for part in parts]
    return [part for part in cleaned if part][:limit]


def as_unit_float(value: Any) -> float | None:
    """A number in 0..1 from 0.7, "0.7", "70%", 70 or "high"; None when there is none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().lower()
        for word, number_for_word in sorted(_WORD_CONFIDENCE.items(), key=lambda kv: -len(kv[0])):
            if text.startswith(word):
                return number_for_word
        match = _NUMBER.search(text)
        if not match:
            return None
        number = float(match.group())
        if "%" in text:
            number /= 100
    if number != number:  # NaN
        return None
    if 1 < number <= 100:
        # A percentage given without the sign.
        number /= 100
    return min(1.0, max(0.0, number))


def first_sentences(text: str, limit: int = 300) -> str:
    """The opening of `text` without Markdown decoration, cut at a sentence end near `limit`."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^[#>*\-\s_]+|[*_`]+", "", line).strip()
        if line and not line.lower().startswith("offline rehearsal"):
            lines.append(line)
    plain = " ".join(lines)
    if len(plain) <= limit:
        return plain
    cut = plain[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > limit // 3 else cut.rstrip() + "…"


def header_value(text: str, label: str) -> str | None:
    """Value of the first `LABEL: value` line in `text` (the prompts' machine-readable headers)."""
    match = re.search(rf"^{re.escape(label)}:[ \t]*(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None
