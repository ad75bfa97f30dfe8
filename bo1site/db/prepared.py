"""Server-side prepared statements for the queries every request (or engine step) runs.

PostgreSQL parses and plans a plain statement each time it receives it; for the small queries
of the hot paths (the token lookup, the list's page and count, the locked read of each
deliberation step) that was about half of their server CPU (the list's three together: 380 ->
230 us per request, 630 -> 460 us of latency in one measurement). Such a query is prepared
once per connection (`PREPARE name AS ...`, sent on the raw connection so it is not counted as
one of the request's queries) and then run with `EXECUTE name(...)`. The names prepared on a
connection live on the connection object itself (bo1site.db.base.PreparingConnection), so a new
connection prepares again.

Prepared statements belong to a server session: behind a pooler that hands each transaction
to another server connection (PgBouncer in transaction mode), set DATABASE_PREPARED_STATEMENTS=0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings


def _numbered(sql: str) -> str:
    """`%s` placeholders as PostgreSQL's `$1`, `$2`... (the SQL holds no literal `%`)."""
    parts = sql.split("%s")
    return "".join(
        part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, start=1)
    )


def execute_prepared(cursor: Any, name: str, sql: str, params: Sequence[Any]) -> None:
    """Run `sql` (with `%s` placeholders) on a Django cursor as the prepared statement `name`."""
    raw = cursor.cursor.connection
    prepared: set[str] | None = getattr(raw, "prepared", None)
    if prepared is None or not settings.DATABASE_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    if name not in prepared:
        with raw.cursor() as setup:
            setup.execute(f"PREPARE {name} AS {_numbered(sql)}")
        prepared.add(name)
    placeholders = ", ".join(["%s"] * len(params))
    cursor.execute(f"EXECUTE {name}({placeholders})", params)
