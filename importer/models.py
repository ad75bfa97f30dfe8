"""What an import leaves beside the sessions it writes: where each came from, and its votes."""

from django.db import models

from sessions_app.models import DeliberationSession


class ImportedSession(models.Model):
    """One session brought over from the original service, and what the source said last time.

    `fingerprint` is a digest of the mapped source fields: a rerun compares it to tell an
    unchanged source (nothing written) from a newer one (the session is updated). Changes made
    here after the import (a user deleting the session, say) are left alone while the source
    stays the same.
    """

    session = models.OneToOneField(
        DeliberationSession,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="import_record",
        db_column="session_id",
    )
    source_user_id = models.CharField(max_length=255)
    source_status = models.CharField(max_length=50)
    source_phase = models.CharField(max_length=50, blank=True)
    # Which stores held the session: "postgres", "redis" or "postgres+redis".
    stores = models.CharField(max_length=20)
    fingerprint = models.CharField(max_length=64)
    first_imported_at = models.DateTimeField(auto_now_add=True)
    last_imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "imported_sessions"
        verbose_name = "imported session"

    def __str__(self) -> str:
        return f"{self.session_id} (from {self.stores})"


class SessionVote(models.Model):
    """A persona's final vote as the original service kept it (its `recommendations` table)."""

    session = models.ForeignKey(
        DeliberationSession,
        on_delete=models.CASCADE,
        related_name="votes",
        db_column="session_id",
        db_index=False,  # the unique (session, source_id) index starts with it
    )
    source_id = models.BigIntegerField()
    sub_problem_index = models.IntegerField(null=True, blank=True)
    persona_code = models.CharField(max_length=50)
    persona_name = models.CharField(max_length=255, blank=True)
    recommendation = models.TextField()
    reasoning = models.TextField(blank=True)
    confidence = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    weight = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "session_votes"
        ordering = ["session", "created_at", "source_id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "source_id"], name="session_votes_source")
        ]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.persona_code}"


class DeletedHere(models.Model):
    """An imported session that was deleted here for good: by its user, by the deletion of its
    user's account, or by retention. A rerun of the import does not bring it back.

    Written by `importer.receivers` when an ImportedSession row goes with its session.
    """

    session_id = models.CharField(max_length=64, primary_key=True)
    source_user_id = models.CharField(max_length=255)
    deleted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "imported_sessions_deleted"
        verbose_name = "imported session deleted here"
        verbose_name_plural = "imported sessions deleted here"

    def __str__(self) -> str:
        return self.session_id
