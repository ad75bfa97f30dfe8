"""The history measurements: full-text search at 100 req/s (one word, a phrase), the list at
cursor page 400 against page 1, and the list while a purge of 100,000 sessions runs."""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

import psycopg2

from .config import ROOT, BenchConfig
from .http_parts import LIST_PATH, PACED_RATE, Target, median, settle
from .load import LoadResult
from .seed import Seeded

logger = logging.getLogger(__name__)

SEARCH_RATE = 100.0
# The seed's problems read "Should we <verb> the <segment> business in <year>? ...": the hot
# user's all say "expand into"; each segment (a word) and segment-and-word phrase is in about a
# fifth of them.
WORD_QUERY = "retail"
PHRASE_QUERY = '"mobile business"'
CURSOR_PAGE = 400
PURGE_SESSIONS = 100_000
# The purged sessions were soft-deleted this long ago; the seed's own are all under a year old,
# so a deleted-retention of two years takes the purge's sessions and nothing else.
PURGE_AGE_DAYS = 1100
PURGE_RETENTION_DAYS = 730
SLICE_SECONDS = 2.0


def _get(base: str, path: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _paced(config: BenchConfig, target: Target, rate: float, rounds: int) -> LoadResult:
    """The median (by p50) of `rounds` paced runs, after a short warm-up."""
    target.run(config, seconds=1.0 if config.quick else 2.0)
    runs = []
    for _ in range(rounds):
        runs.append(target.run(config, rate=rate))
        settle()
    return median(runs, key=lambda r: r.p50)


def _search_path(query: str) -> str:
    return "/api/v1/sessions?" + urllib.parse.urlencode({"q": query, "limit": 20})


def run_search(config: BenchConfig, seeded: Seeded, base: str, server: Any) -> dict[str, Any]:
    """One word and one phrase, each paced at SEARCH_RATE."""
    figures: dict[str, Any] = {}
    for name, query in (("search_word", WORD_QUERY), ("search_phrase", PHRASE_QUERY)):
        path = _search_path(query)
        total = _get(base, path, seeded.hot_token)["total"]
        target = Target(name, base, [path], seeded.hot_token, server)
        paced = _paced(config, target, SEARCH_RATE, rounds=1 if config.quick else 3)
        figures[name] = {"query": query, "matches": total, "paced": paced.as_dict()}
        logger.info("%s %r: %d matches, p50 %.2f ms at %.0f req/s", name, query, total,
                    paced.p50, paced.rps)  # fmt: skip
    return figures


def cursor_for_page(base: str, token: str, page: int) -> str:
    """The cursor that opens page `page` (1-based) of the list, walked to page by page."""
    cursor = ""
    for _ in range(page - 1):
        body = _get(base, LIST_PATH + (f"&cursor={cursor}" if cursor else ""), token)
        cursor = body["next_cursor"]
        if cursor is None:
            raise SystemExit(f"bench: the hot user's list has fewer than {page} pages")
    return cursor


def run_cursor(config: BenchConfig, seeded: Seeded, base: str, server: Any) -> dict[str, Any]:
    """Page 1 and page CURSOR_PAGE by cursor, measured in interleaved rounds at the list's rate."""
    page = min(CURSOR_PAGE, seeded.hot_visible // 20)  # a --quick seed has fewer pages
    cursor = cursor_for_page(base, seeded.hot_token, page)
    targets = {
        "page_1": Target("cursor_page_1", base, [LIST_PATH], seeded.hot_token, server),
        "page_400": Target(
            f"cursor_page_{page}", base, [f"{LIST_PATH}&cursor={cursor}"], seeded.hot_token, server
        ),
    }
    runs: dict[str, list[LoadResult]] = {name: [] for name in targets}
    for target in targets.values():
        target.run(config, seconds=1.0)
    for _ in range(1 if config.quick else 3):
        for name, target in targets.items():
            runs[name].append(target.run(config, rate=PACED_RATE))
            settle()
    chosen = {name: median(r, key=lambda x: x.p50) for name, r in runs.items()}
    ratio = chosen["page_400"].p50 / chosen["page_1"].p50
    logger.info("cursor: page 1 p50 %.2f ms, page %d p50 %.2f ms (x%.2f)",
                chosen["page_1"].p50, page, chosen["page_400"].p50, ratio)  # fmt: skip
    return {
        "page": page,
        "page_1": chosen["page_1"].as_dict(),
        "page_400": chosen["page_400"].as_dict(),
        "ratio": round(ratio, 3),
        "rounds_p50": {name: [round(r.p50, 3) for r in rs] for name, rs in runs.items()},
    }


ADD_PURGEABLE_SQL = """
INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email,
                       is_staff, is_active, date_joined)
VALUES ('bench-purge', '!', false, '', '', '', false, true, now())
ON CONFLICT (username) DO NOTHING;
WITH fodder AS (
    INSERT INTO sessions (id, user_id, problem_statement, problem_context, max_rounds, status,
        status_changed_at, pause_reason, phase, round_number, personas, contribution_count,
        clarification_question, total_cost, total_tokens, costs_by_phase, synthesis_text,
        final_recommendation, last_sequence, created_at, updated_at, legal_hold)
    SELECT 'bo1_' || gen_random_uuid(), (SELECT id FROM auth_user WHERE username = 'bench-purge'),
        'Should we retire the legacy product line? Case ' || i, '{}'::jsonb, 6, 'deleted',
        now() - %(age)s * interval '1 day', '', 'complete', 2, '[]'::jsonb, 0, '', 0, 0,
        '{}'::jsonb, 'Retire it in two steps.', 'Retire it.', 2,
        now() - (%(age)s + 1) * interval '1 day', now() - %(age)s * interval '1 day', false
    FROM generate_series(1, %(count)s) AS i
    RETURNING id, created_at
)
INSERT INTO session_events (session_id, sequence, event_type, data, created_at)
SELECT id, n, 'contribution', '{"content": "Retire it."}'::jsonb, created_at
FROM fodder, generate_series(1, 2) AS n;
"""


def purge_count(config: BenchConfig) -> int:
    return PURGE_SESSIONS // 10 if config.quick else PURGE_SESSIONS


def add_purgeable(config: BenchConfig) -> float:
    """PURGE_SESSIONS soft-deleted sessions (two events each) for retention to take."""
    started = time.monotonic()
    conn = psycopg2.connect(config.database_url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(ADD_PURGEABLE_SQL, {"age": PURGE_AGE_DAYS, "count": purge_count(config)})
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE sessions")
    finally:
        conn.close()
    return time.monotonic() - started


def start_purge(config: BenchConfig) -> subprocess.Popen:
    """`manage.py purge_sessions`, as the worker's daily job runs it."""
    env = config.child_env(BO1_DELETED_RETENTION_DAYS=str(PURGE_RETENTION_DAYS))
    return subprocess.Popen(
        [config.python, "manage.py", "purge_sessions"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_list_during_purge(
    config: BenchConfig, seeded: Seeded, base: str, server: Any
) -> dict[str, Any]:
    """The list paced at its rate in short slices: without a purge, then while one runs."""
    fodder_seconds = add_purgeable(config)
    target = Target("list", base, [LIST_PATH], seeded.hot_token, server)
    target.run(config, seconds=1.0)
    without = [target.run(config, rate=PACED_RATE, seconds=SLICE_SECONDS) for _ in range(5)]
    purge = start_purge(config)
    started = time.monotonic()
    during = []
    while purge.poll() is None:
        during.append(target.run(config, rate=PACED_RATE, seconds=SLICE_SECONDS))
    purge_seconds = time.monotonic() - started
    output = purge.stdout.read().strip() if purge.stdout else ""
    if purge.returncode != 0:
        raise SystemExit(f"bench: purge_sessions failed: {output}")
    # The last slice may have run partly after the purge ended: it is left out when others exist.
    measured = during[:-1] or during
    base_p50 = median(without, key=lambda r: r.p50).p50
    during_p50 = median(measured, key=lambda r: r.p50).p50
    logger.info("list p50 %.2f ms without a purge, %.2f ms during (%s in %.0f s)",
                base_p50, during_p50, output.splitlines()[-1:], purge_seconds)  # fmt: skip
    return {
        "sessions": purge_count(config),
        "fodder_seconds": round(fodder_seconds, 1),
        "purge_seconds": round(purge_seconds, 1),
        "purge_output": output.splitlines()[-1] if output else "",
        "without_p50": round(base_p50, 3),
        "during_p50": round(during_p50, 3),
        "ratio": round(during_p50 / base_p50, 3),
        "slices_without": [round(r.p50, 3) for r in without],
        "slices_during": [round(r.p50, 3) for r in measured],
        "errors_during": sum(r.errors for r in during),
    }


def run_history(config: BenchConfig, seeded: Seeded, base: str, server: Any) -> dict[str, Any]:
    return {
        "search": run_search(config, seeded, base, server),
        "cursor": run_cursor(config, seeded, base, server),
        "purge": run_list_during_purge(config, seeded, base, server),
    }
