"""Full-text search (a generated tsvector and its GIN index) and the legal hold."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import BtreeGinExtension
from django.db import migrations, models

import sessions_app.search


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0004_session_count_changes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # GIN over (user_id, search_vector) needs btree_gin's operator classes for integers.
        BtreeGinExtension(),
        migrations.AddField(
            model_name="deliberationsession",
            name="legal_hold",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="deliberationsession",
            name="legal_hold_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="deliberationsession",
            name="legal_hold_by",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="deliberationsession",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=sessions_app.search.SessionSearchDocument(),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="deliberationsession",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["user", "search_vector"], name="sessions_user_search", fastupdate=False
            ),
        ),
    ]
