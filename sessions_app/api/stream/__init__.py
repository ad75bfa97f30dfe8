"""Server-Sent Events for one session, in three parts.

- `wire`: the SSE format (frames, keep-alives, Last-Event-ID / ?after= resume position);
- `hub`: one Redis reader per process that fans each session's live events out to its streams;
- `replay`: the reads from PostgreSQL (replay, catch-up, polling), on the stream's own threads;
- `view`: the DRF view, which authenticates and documents itself like every API view.
"""

from .hub import StreamHub, stream_hub
from .view import SessionStreamView

__all__ = ["SessionStreamView", "StreamHub", "stream_hub"]
