"""The original service's events, from whichever store holds them, made comparable: an event
seen in two stores (same type, timestamp and data) is one event."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from .values import BrokenRecord, as_integer, parse_time


@dataclass
class SourceEvent:
    """One event as a store of the original holds it, reduced to what identifies it."""

    event_type: str
    timestamp: datetime
    timestamp_text: str
    sequence: int | None
    data: dict[str, Any]
    key: str  # identifies the event across stores: same type, timestamp and data


def _event_key(event_type: str, timestamp_text: str, data: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(
        orjson.dumps([event_type, timestamp_text, data], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    return f"bo1:{digest}"


def source_event(
    envelope: Any, *, fallback_type: str = "", fallback_time: Any = None
) -> SourceEvent:
    """An event from an envelope `{event_type, session_id, sequence, timestamp, data}`.

    PostgreSQL rows keep the whole envelope in `data`; a row written another way (the inner data
    only) takes its type and time from the row's columns.
    """
    if not isinstance(envelope, dict):
        raise BrokenRecord(f"event is a {type(envelope).__name__}, not an object")
    if "data" in envelope and ("timestamp" in envelope or "event_type" in envelope):
        data = envelope.get("data")
        event_type = envelope.get("event_type") or fallback_type
        raw_time = envelope.get("timestamp") or fallback_time
        sequence = envelope.get("sequence")
    else:
        data, event_type, raw_time, sequence = envelope, fallback_type, fallback_time, None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BrokenRecord(f"event data is a {type(data).__name__}, not an object")
    if not isinstance(event_type, str) or not event_type:
        raise BrokenRecord("event has no event_type")
    timestamp = parse_time(raw_time, "event timestamp")
    if timestamp is None:
        raise BrokenRecord(f"event {event_type} has no timestamp")
    timestamp_text = raw_time if isinstance(raw_time, str) else timestamp.isoformat()
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
        sequence = as_integer(sequence, "event sequence")
    return SourceEvent(
        event_type=event_type,
        timestamp=timestamp,
        timestamp_text=timestamp_text,
        sequence=sequence,
        data=data,
        key=_event_key(event_type, timestamp.isoformat(), data),
    )


def merge_events(*sources: Iterable[SourceEvent]) -> list[SourceEvent]:
    """All sources' events, duplicates dropped, in time order (ties: the order given)."""
    seen: set[str] = set()
    merged: list[SourceEvent] = []
    for events in sources:
        for event in events:
            if event.key not in seen:
                seen.add(event.key)
                merged.append(event)
    merged.sort(key=lambda e: e.timestamp)  # stable: ties keep the sources' order
    return merged


def event_data(event: SourceEvent) -> dict[str, Any]:
    """The data we store: the original's data, with its sequence and timestamp kept."""
    data = dict(event.data)
    data["original_sequence"] = event.sequence
    data["original_timestamp"] = event.timestamp_text
    return data
