"""Search through an index of owner-prefixed words (sessions_app/search.py says why), and no
separate index on sessions.user_id (every query by user starts with `sessions_user_status` or
`sessions_user_recent`).

The indexes are built and dropped CONCURRENTLY, so a large table keeps taking writes meanwhile.
"""

import django.contrib.postgres.indexes
import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

import sessions_app.search

# The words of a row's document, each prefixed with the row's owner ("42:busi"), plus the
# owner's own key ("42:") so that every row of the owner is in the index at least once.
SEARCH_KEYS = r"""
CREATE FUNCTION session_search_keys(owner bigint, document tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array_to_tsvector(
        array_append(array_agg(owner::text || ':' || lexeme), owner::text || ':')
    )
    FROM unnest(document) AS entry(lexeme, positions, weights)
$$;
"""

# A query over those keys that finds every row of `owner` that `query` can match: the words
# PostgreSQL's querytree() says an index can use (negated ones are left out), each prefixed
# with the owner, and phrase operators read as AND (the row's own document decides the
# phrase). A query with nothing to look up in an index becomes the owner's key alone; an empty
# one stays empty (it matches nothing).
SEARCH_SCOPE = r"""
CREATE FUNCTION session_search_scope(owner bigint, query tsquery) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN numnode(query) = 0 THEN query
        WHEN querytree(query) = 'T' THEN quote_literal(owner::text || ':')::tsquery
        ELSE (
            SELECT string_agg(
                CASE
                    WHEN token LIKE '''%' THEN '''' || owner::text || ':' || substr(token, 2)
                    WHEN token LIKE '<%' THEN ' & '
                    ELSE token
                END,
                '' ORDER BY n
            )::tsquery
            FROM regexp_matches(
                querytree(query), '''(?:[^'']|'''')*''|<[0-9-]*>|[^''<]+', 'g'
            ) WITH ORDINALITY AS part(matched, n),
            LATERAL (SELECT part.matched[1]) AS piece(token)
        )
    END
$$;
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sessions_app", "0005_search_and_legal_hold"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(
            SEARCH_KEYS + SEARCH_SCOPE,
            reverse_sql=(
                "DROP FUNCTION session_search_scope(bigint, tsquery);"
                "DROP FUNCTION session_search_keys(bigint, tsvector);"
            ),
        ),
        AddIndexConcurrently(
            model_name="deliberationsession",
            index=django.contrib.postgres.indexes.GinIndex(
                sessions_app.search.SessionSearchKeys(),
                fastupdate=False,
                name="sessions_search_keys",
            ),
        ),
        RemoveIndexConcurrently(model_name="deliberationsession", name="sessions_user_search"),
        migrations.AlterField(
            model_name="deliberationsession",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliberation_sessions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
