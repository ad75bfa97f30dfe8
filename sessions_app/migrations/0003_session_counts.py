"""Per-user, per-status session counts, kept by a trigger: the list's exact total in O(1)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The trigger keeps session_counts in the transaction that changes `sessions`. An update that
# moves a session between two counters upserts both in one statement, in key order, so concurrent
# transitions of one user's sessions take the counter rows' locks in the same order.
CREATE_TRIGGER = """
LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE;

CREATE FUNCTION session_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION session_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM session_counts;
    RETURN NULL;
END;
$$;

CREATE TRIGGER session_counts_rows AFTER INSERT OR DELETE OR UPDATE OF status, user_id
    ON sessions FOR EACH ROW EXECUTE FUNCTION session_counts_apply();
CREATE TRIGGER session_counts_truncate AFTER TRUNCATE
    ON sessions FOR EACH STATEMENT EXECUTE FUNCTION session_counts_reset();

INSERT INTO session_counts (user_id, status, count)
SELECT user_id, status, count(*) FROM sessions GROUP BY user_id, status;
"""

DROP_TRIGGER = """
DROP TRIGGER IF EXISTS session_counts_truncate ON sessions;
DROP TRIGGER IF EXISTS session_counts_rows ON sessions;
DROP FUNCTION IF EXISTS session_counts_reset();
DROP FUNCTION IF EXISTS session_counts_apply();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0002_cost_limit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SessionCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("created", "Created"),
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("paused", "Paused"),
                            ("completed", "Completed"),
                            ("failed", "Failed"),
                            ("killed", "Killed"),
                            ("deleted", "Deleted"),
                        ],
                        max_length=16,
                    ),
                ),
                ("count", models.BigIntegerField(default=0)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "session_counts",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("user", "status"), name="session_counts_user_status"
                    )
                ],
            },
        ),
        migrations.RunSQL(CREATE_TRIGGER, DROP_TRIGGER),
    ]
