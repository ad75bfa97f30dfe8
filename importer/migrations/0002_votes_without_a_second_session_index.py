"""No separate index on session_votes.session_id: the unique (session_id, source_id) leads."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("importer", "0001_imported_sessions_and_votes"),
        ("sessions_app", "0006_search_keys_per_owner"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sessionvote",
            name="session",
            field=models.ForeignKey(
                db_column="session_id",
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="votes",
                to="sessions_app.deliberationsession",
            ),
        ),
    ]
