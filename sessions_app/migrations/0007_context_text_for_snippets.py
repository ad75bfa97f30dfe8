"""The text of a session's context (its string values, as the search document reads them), for
the snippet of a search result that matches only there."""

from django.db import migrations

CONTEXT_TEXT = r"""
CREATE FUNCTION session_context_text(context jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT string_agg(value #>> '{}', ' ')
    FROM jsonb_path_query(context, 'strict $.** ? (@.type() == "string")') AS value
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0006_search_keys_per_owner")]

    operations = [
        migrations.RunSQL(CONTEXT_TEXT, reverse_sql="DROP FUNCTION session_context_text(jsonb);")
    ]
