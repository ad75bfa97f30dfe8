"""The count trigger writes to a change row of its own connection, not the user's counter row.

Updating one counter row per user made every create of that user wait for the previous one's
commit (its row lock lasts until the WAL is flushed), so a user's concurrent creates queued one
behind the other and each paid its own flush. The trigger now updates the user's row in
session_count_changes for the connection it runs on (pg_backend_pid()), which no concurrent
transaction shares; session_counts_fold() moves those rows into session_counts, and the list's
total is the sum of both, exact at every instant.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

STATUS_CHOICES = [
    ("created", "Created"),
    ("queued", "Queued"),
    ("running", "Running"),
    ("paused", "Paused"),
    ("completed", "Completed"),
    ("failed", "Failed"),
    ("killed", "Killed"),
    ("deleted", "Deleted"),
]

CHANGES_PER_CONNECTION = """
LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE;

-- Each connection keeps its own change row per user and status (pg_backend_pid()): a connection
-- runs one transaction at a time, so no two transactions ever wait for the same row.
CREATE OR REPLACE FUNCTION session_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO session_count_changes AS c (user_id, status, backend, delta)
        VALUES (NEW.user_id, NEW.status, pg_backend_pid(), 1)
        ON CONFLICT (user_id, status, backend) DO UPDATE SET delta = c.delta + 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO session_count_changes AS c (user_id, status, backend, delta)
        VALUES (OLD.user_id, OLD.status, pg_backend_pid(), -1)
        ON CONFLICT (user_id, status, backend) DO UPDATE SET delta = c.delta - 1;
    ELSIF NEW.status IS DISTINCT FROM OLD.status OR NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        INSERT INTO session_count_changes AS c (user_id, status, backend, delta)
        SELECT d.user_id, d.status, pg_backend_pid(), d.delta
        FROM (VALUES (OLD.user_id, OLD.status, -1), (NEW.user_id, NEW.status, 1))
            AS d (user_id, status, delta)
        ORDER BY d.user_id, d.status
        ON CONFLICT (user_id, status, backend) DO UPDATE SET delta = c.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION session_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM session_count_changes;
    DELETE FROM session_counts;
    RETURN NULL;
END;
$$;

-- Moves the change rows into the counters, in one transaction: a reader sees either the
-- changes or their sum, never both or neither. Changes of a user who is gone are dropped.
-- Returns how many change rows it moved.
CREATE FUNCTION session_counts_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    -- A row its connection is changing right now is left for the next fold (SKIP LOCKED).
    WITH taken AS (
        DELETE FROM session_count_changes
        WHERE id IN (SELECT id FROM session_count_changes FOR UPDATE SKIP LOCKED)
        RETURNING user_id, status, delta
    ), summed AS (
        INSERT INTO session_counts AS c (user_id, status, count)
        SELECT t.user_id, t.status, SUM(t.delta)
        FROM taken t JOIN auth_user u ON u.id = t.user_id
        GROUP BY t.user_id, t.status
        ORDER BY t.user_id, t.status
        ON CONFLICT (user_id, status) DO UPDATE SET count = c.count + EXCLUDED.count
    )
    SELECT count(*) INTO moved FROM taken;
    RETURN moved;
END;
$$;
"""

RESTORE_COUNTER_UPDATES = """
SELECT session_counts_fold();
DROP FUNCTION session_counts_fold();

CREATE OR REPLACE FUNCTION session_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO session_counts AS c (user_id, status, count)
        VALUES (NEW.user_id, NEW.status, 1)
        ON CONFLICT (user_id, status) DO UPDATE SET count = c.count + 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE session_counts SET count = count - 1
        WHERE user_id = OLD.user_id AND status = OLD.status;
    ELSIF NEW.status IS DISTINCT FROM OLD.status OR NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        INSERT INTO session_counts AS c (user_id, status, count)
        SELECT d.user_id, d.status, d.delta
        FROM (VALUES (OLD.user_id, OLD.status, -1), (NEW.user_id, NEW.status, 1))
            AS d (user_id, status, delta)
        ORDER BY d.user_id, d.status
        ON CONFLICT (user_id, status) DO UPDATE SET count = c.count + EXCLUDED.count;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION session_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM session_counts;
    RETURN NULL;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0003_session_counts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SessionCountChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("status", models.CharField(choices=STATUS_CHOICES, max_length=16)),
                ("backend", models.IntegerField()),
                ("delta", models.BigIntegerField(default=0)),
                (
                    "user",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "session_count_changes",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("user", "status", "backend"), name="session_count_changes_key"
                    )
                ],
            },
        ),
        migrations.RunSQL(CHANGES_PER_CONNECTION, RESTORE_COUNTER_UPDATES),
    ]
