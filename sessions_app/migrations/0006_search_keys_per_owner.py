"""Search through an index of owner-prefixed words (sessions_app/search.py says why), and fewer
index entries for every write to maintain: no `sessions.user_id` index (every query by user is
served by `sessions_user_status` or `sessions_user_recent`), no `session_events.session_id` index
(the unique (session_id, sequence) index starts with it), none of the `varchar_pattern_ops`
copies Django made of both ids for LIKE queries (nothing runs one), and `legal_hold_by` indexed
only where it is set.

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
# PL/pgSQL rather than SQL: every INSERT calls it once, and PL/pgSQL keeps its plan for the
# session (an SQL function is planned again for each statement: 65 against 30 us a call).
SEARCH_KEYS = r"""
CREATE FUNCTION session_search_keys(owner bigint, document tsvector) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN array_to_tsvector(array_append(
        ARRAY(SELECT owner::text || ':' || lexeme FROM unnest(tsvector_to_array(document)) lexeme),
        owner::text || ':'
    ));
END
$$;
"""

# A query over those keys that finds every row of `owner` that `terms` can match: the words
# PostgreSQL's querytree() says an index can use (negated ones are left out), each prefixed
# with the owner, and phrase operators read as AND (the row's own document decides the
# phrase). A query with nothing to look up in an index becomes the owner's key alone; an empty
# one stays empty (it matches nothing).
SEARCH_SCOPE = r"""
CREATE FUNCTION session_search_scope(owner bigint, terms tsquery) RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    indexable text := querytree(terms);
BEGIN
    IF numnode(terms) = 0 THEN
        RETURN terms;
    END IF;
    IF indexable = 'T' THEN
        RETURN quote_literal(owner::text || ':')::tsquery;
    END IF;
    RETURN (
        SELECT string_agg(
            CASE
                WHEN token LIKE '''%' THEN '''' || owner::text || ':' || substr(token, 2)
                WHEN token LIKE '<%' THEN ' & '
                ELSE token
            END,
            '' ORDER BY n
        )
        FROM regexp_matches(indexable, '''(?:[^'']|'''')*''|<[0-9-]*>|[^''<]+', 'g')
            WITH ORDINALITY AS part(matched, n),
        LATERAL (SELECT part.matched[1]) AS piece(token)
    )::tsquery;
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
            model_name="sessionevent",
            name="session",
            field=models.ForeignKey(
                db_column="session_id",
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="sessions_app.deliberationsession",
            ),
        ),
        # Django's LIKE index of the primary key; it is not part of the migration state.
        migrations.RunSQL(
            "DROP INDEX CONCURRENTLY IF EXISTS sessions_id_778b715b_like",
            reverse_sql=(
                "CREATE INDEX IF NOT EXISTS sessions_id_778b715b_like "
                "ON sessions (id varchar_pattern_ops)"
            ),
        ),
        migrations.AlterField(
            model_name="deliberationsession",
            name="legal_hold_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        AddIndexConcurrently(
            model_name="deliberationsession",
            index=models.Index(
                condition=models.Q(("legal_hold_by__isnull", False)),
                fields=["legal_hold_by"],
                name="sessions_legal_hold_by",
            ),
        ),
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
