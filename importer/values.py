"""Reading the original service's values: a record that cannot be read raises BrokenRecord,
whose message is the reason the import's summary and log give for skipping it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class BrokenRecord(Exception):
    """A source record that cannot be imported; the message is the reason shown to the operator."""


def parse_time(value: Any, what: str = "timestamp") -> datetime | None:
    """An aware datetime from what the original wrote: a datetime, ISO 8601 or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BrokenRecord(
                f"{what} {text[:40]!r} is neither ISO 8601 nor epoch seconds"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise BrokenRecord(f"{what} has the wrong type ({type(value).__name__})")


def as_text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return str(value)
    raise BrokenRecord(f"{what} has the wrong type ({type(value).__name__})")


def as_number(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BrokenRecord(f"{what} has the wrong type (bool)")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BrokenRecord(f"{what} {str(value)[:20]!r} is not a number") from None


def as_integer(value: Any, what: str) -> int | None:
    number = as_number(value, what)
    return int(number) if number is not None else None
