"""What the importer hears from the store: an imported session deleted for good is remembered,
so that a rerun of the import does not bring back what a user (or retention) deleted here.

The store deletes sessions with querysets; Django's deletion collector sends `post_delete` for
each ImportedSession row that goes with its session because this receiver listens for it.
"""

from typing import Any

from django.db.models import QuerySet
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import DeletedHere, ImportedSession


@receiver(post_delete, sender=ImportedSession, dispatch_uid="importer.remember_deleted")
def remember_deleted(
    sender: Any, instance: ImportedSession, origin: Any = None, **kwargs: Any
) -> None:
    # `origin` is what the deletion started from: a session (or its user) deleted, not the
    # import record alone.
    origin_model = origin.model if isinstance(origin, QuerySet) else type(origin)
    if origin_model is ImportedSession:
        return
    # One INSERT ... ON CONFLICT DO NOTHING (a session deleted twice is remembered once).
    DeletedHere.objects.bulk_create(
        [DeletedHere(session_id=instance.session_id, source_user_id=instance.source_user_id)],
        ignore_conflicts=True,
    )
