"""Django's PostgreSQL backend with a cheaper per-request health check, and connections that
remember their prepared statements (bo1site/serving/db/prepared.py uses that memory).

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` on a persistent connection before its first
query in each request, so a connection the server has dropped (a restart, an idle timeout, an
operator's pg_terminate_backend) is replaced instead of failing the request. That is one more
round trip on every request. A connection that sits idle between requests has nothing to read,
and when the server drops it the kernel makes its socket readable (the server's goodbye, or the
end of the stream): so a non-blocking poll of the socket answers the same question without
asking the server. Only when something is waiting does the check fall back to Django's
`SELECT 1`. After an error inside a request Django still checks with `SELECT 1` as before.

Measured (docs/PERFORMANCE-HISTORY.md, "Health check"): a list request makes 3 round trips to
PostgreSQL instead of 4. Prepared statements ("Prepared statements" there): the token check and
the list's page and count cost PostgreSQL 380 -> 230 us of CPU, 630 -> 460 us of latency.
Wired in by settings (`DATABASES["default"]["ENGINE"] = "bo1site.serving.db"`).
"""

from __future__ import annotations

import select
from typing import Any

import psycopg2.extensions
from django.db.backends.postgresql import base


class PreparingConnection(psycopg2.extensions.connection):
    """psycopg2's connection, remembering which statements are prepared on it (see prepared)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params.setdefault("connection_factory", PreparingConnection)
        return params

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and self._idle_socket_is_quiet()
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _idle_socket_is_quiet(self) -> bool:
        """True when the connection is open and the server has sent nothing since our last query."""
        connection = self.connection
        if connection.closed:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
