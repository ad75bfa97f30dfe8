"""The durable session store: every session and every event, kept in PostgreSQL for good."""

import uuid
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

import vocabulary
from vocabulary import FINISHED_STATUSES

from .search import SessionSearchDocument, SessionSearchKeys

__all__ = [
    "FINISHED_STATUSES",
    "DeliberationSession",
    "PauseReason",
    "Phase",
    "SessionCount",
    "SessionEvent",
    "Status",
]

# What new_session_id makes (and what the original service made): `bo1_` and a UUID in its
# canonical lowercase form. URLs accept nothing else (sessions_app.converters).
SESSION_ID_REGEX = r"bo1_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def new_session_id() -> str:
    """A session id, made by the application before any write."""
    return f"bo1_{uuid.uuid4()}"


def _choices(vocabulary_enum: type[StrEnum]) -> Any:
    """Django choices with the vocabulary's values (labels as Django makes them)."""
    members = [(member.name, member.value) for member in vocabulary_enum]
    # Django's functional Choices API, which the type stubs do not describe.
    return models.TextChoices(vocabulary_enum.__name__, members)  # type: ignore[call-overload]


# The values are defined once, in `vocabulary`; these are their Django choices for the fields.
Status = _choices(vocabulary.Status)
Phase = _choices(vocabulary.Phase)
PauseReason = _choices(vocabulary.PauseReason)


class SessionManager(models.Manager["DeliberationSession"]):
    """Rows without the search document: PostgreSQL computes it and searches with it, Python
    never reads it, and it is the widest column of most rows (`.only()` or a plain attribute
    access still reaches it)."""

    def get_queryset(self) -> models.QuerySet["DeliberationSession"]:
        return super().get_queryset().defer("search_vector")


class DeliberationSession(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="deliberation_sessions",
        db_index=False,  # sessions_user_status and sessions_user_recent start with the user
    )
    problem_statement = models.TextField()
    problem_context = models.JSONField(default=dict, blank=True)
    max_rounds = models.PositiveSmallIntegerField(default=6)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (unique only when set)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    status_changed_at = models.DateTimeField(default=timezone.now)
    pause_reason = models.CharField(max_length=16, choices=PauseReason.choices, blank=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.INTAKE)
    round_number = models.PositiveIntegerField(default=0)

    personas = models.JSONField(default=list, blank=True)
    contribution_count = models.PositiveIntegerField(default=0)
    clarification_question = models.TextField(blank=True)
    total_cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    # USD the deliberation may spend before it pauses (reason budget); null means the default.
    cost_limit = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    total_tokens = models.BigIntegerField(default=0)
    costs_by_phase = models.JSONField(default=dict, blank=True)
    synthesis_text = models.TextField(blank=True)
    final_recommendation = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True)

    # The engine's resumable state, saved after every step.
    checkpoint = models.JSONField(null=True, blank=True, editable=False)
    # The last event sequence number handed out; the row lock on this column orders writers.
    last_sequence = models.PositiveIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    # The search document, computed by PostgreSQL on every write (a stored generated column).
    search_vector = models.GeneratedField(
        expression=SessionSearchDocument(),
        output_field=SearchVectorField(),
        db_persist=True,
        editable=False,
    )

    # A session under legal hold is never deleted by retention (purge_sessions).
    # db_default: rows written by SQL of their own (imports, the benchmark's seed) are not held.
    legal_hold = models.BooleanField(default=False, db_default=False)
    legal_hold_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        db_index=False,  # sessions_legal_hold_by indexes the few rows that have one
    )
    legal_hold_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = SessionManager()

    class Meta:
        db_table = "sessions"
        verbose_name = "session"
        ordering = ["-created_at", "-id"]
        indexes = [
            # "This user's sessions, newest first", deleted ones hidden.
            models.Index(
                fields=["user", "-created_at", "-id"],
                name="sessions_user_recent",
                condition=~models.Q(status="deleted"),
            ),
            models.Index(fields=["user", "status", "-created_at"], name="sessions_user_status"),
            models.Index(fields=["status", "-status_changed_at"], name="sessions_status"),
            models.Index(fields=["-created_at"], name="sessions_created"),
            GinIndex(
                OpClass(Upper("problem_statement"), name="gin_trgm_ops"),
                name="sessions_problem_trgm",
            ),
            # Full-text search within one user's sessions: the document's words prefixed with
            # the owner, so a word's entries are that user's rows only (search.py). Without
            # fastupdate every write goes into the index itself: a pending list would make each
            # search scan it.
            GinIndex(SessionSearchKeys(), name="sessions_search_keys", fastupdate=False),
            models.Index(
                fields=["legal_hold_by"],
                name="sessions_legal_hold_by",
                condition=models.Q(legal_hold_by__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                name="sessions_user_idempotency_key",
                condition=models.Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.id


class SessionCount(models.Model):
    """How many sessions a user had in each status when the changes were last folded in.

    The list's exact total without a scan is this plus the user's SessionCountChange rows.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "session_counts"
        constraints = [
            models.UniqueConstraint(fields=["user", "status"], name="session_counts_user_status")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.status}: {self.count}"


class SessionCountChange(models.Model):
    """How a user's count of sessions in a status changed on one database connection since the
    last fold into SessionCount.

    A PostgreSQL trigger on `sessions` (migrations 0003 and 0004) keeps it, in the same
    transaction as every insert, delete and status change, whichever code path made it. Each
    connection (`backend`, its server process id) updates its own row, and a connection runs one
    transaction at a time: two creates of one user never wait for each other's commit, as they
    did on the user's single counter row. `session_counts_fold` (run by the periodic repair)
    moves the rows into SessionCount; until then there are at most a few per user and status.
    """

    # No foreign key: the trigger writes a change while a deleted user's sessions go, after
    # Django has collected the rows that point at the user. Folding drops such orphans.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,  # the unique (user, status, backend) index serves
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    backend = models.IntegerField()
    delta = models.BigIntegerField(default=0)

    class Meta:
        db_table = "session_count_changes"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "status", "backend"], name="session_count_changes_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.status}@{self.backend}: {self.delta:+d}"


class SessionEvent(models.Model):
    session = models.ForeignKey(
        DeliberationSession,
        on_delete=models.CASCADE,
        related_name="events",
        db_column="session_id",
        db_index=False,  # the unique (session, sequence) index starts with it
    )
    sequence = models.PositiveIntegerField()
    event_type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    # Lets a writer that retries (a worker after a crash or an outage) add an event exactly once.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "session_events"
        ordering = ["session", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["session", "sequence"], name="session_events_sequence"),
            models.UniqueConstraint(
                fields=["session", "idempotency_key"],
                name="session_events_idempotency_key",
                condition=models.Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.sequence} {self.event_type}"
