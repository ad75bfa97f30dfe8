"""The SQL the list runs, as the application builds it: `python -m scripts.bench.app_queries
USER_ID` prints {name: SQL with its values} for the report's query plans (report.explain).

It runs the real selector for the user, with server-side prepared statements off so that every
statement is plain SQL that EXPLAIN can run again.
"""

from __future__ import annotations

import json
import os
import sys

from .history import CURSOR_PAGE, PHRASE_QUERY, WORD_QUERY


def capture(call: object) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        call()  # type: ignore[operator]
    return [query["sql"] for query in queries.captured_queries]


def main(user_id: int) -> dict[str, str]:
    os.environ["DATABASE_PREPARED_STATEMENTS"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User

    from sessions_app.selectors import session_list_for_user

    user = User.objects.get(pk=user_id)
    found: dict[str, str] = {}
    page, total = capture(lambda: session_list_for_user(user=user))
    found["list page"], found["list total (the per-status counters)"] = page, total
    cursor = None
    for _ in range(CURSOR_PAGE - 1):
        cursor = session_list_for_user(user=user, cursor=cursor).next_cursor
    found[f"list page {CURSOR_PAGE}, by cursor"] = capture(
        lambda: session_list_for_user(user=user, cursor=cursor)
    )[0]
    for label, q in (("one word", WORD_QUERY), ("a phrase", PHRASE_QUERY)):
        ranking, rows = capture(lambda q=q: session_list_for_user(user=user, q=q))
        found[f"search, {label} ({q}): ranking and total"] = ranking
        found[f"search, {label}: the page's rows and snippets"] = rows
    return found


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
