"""One import run: read both stores batch by batch, merge each session, write it, count."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, reset_queries

from sessions_app.models import DeliberationSession, SessionEvent

from .events import merge_events
from .mapping import Merged, merge_session
from .models import DeletedHere, ImportedSession
from .services import (
    NewSession,
    Prior,
    imported_session_prepare,
    imported_session_write,
    user_for_email,
)
from .sources import PostgresSource, RedisSource, SessionSource, read_events, read_metadata
from .values import BrokenRecord, parse_time
from .writer import SessionWriter

logger = logging.getLogger(__name__)

BATCH = 500
NEW = Prior(exists=False)


@dataclass
class Summary:
    """What a run did; `as_dict` is the --json output."""

    dry_run: bool = False
    users_matched: int = 0
    users_created: int = 0
    sessions_imported: int = 0
    sessions_updated: int = 0
    sessions_unchanged: int = 0
    sessions_deleted_here: int = 0
    events_imported: int = 0
    votes_imported: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    unreadable_failed_events: int = 0
    interrupted: bool = False

    @property
    def sessions_skipped(self) -> int:
        return len(self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "users": {"matched": self.users_matched, "created": self.users_created},
            "sessions": {
                "imported": self.sessions_imported,
                "updated": self.sessions_updated,
                "unchanged": self.sessions_unchanged,
                "deleted_here": self.sessions_deleted_here,
                "skipped": self.sessions_skipped,
            },
            "events_imported": self.events_imported,
            "votes_imported": self.votes_imported,
            "unreadable_failed_events": self.unreadable_failed_events,
            "skipped": self.skipped,
        }


class Importer:
    """Imports every session of the original service that either store holds."""

    def __init__(
        self,
        *,
        postgres: PostgresSource | None,
        redis: RedisSource | None,
        since: datetime | None = None,
        dry_run: bool = False,
        batch_size: int = BATCH,
    ) -> None:
        self.postgres, self.redis = postgres, redis
        self.since, self.dry_run, self.batch_size = since, dry_run, batch_size
        self.summary = Summary(dry_run=dry_run)
        self._emails: dict[str, str] = postgres.user_emails() if postgres else {}
        self._users: dict[str, Any] = {}  # source user id → our user (or None in a dry run)
        self._queued: dict[str, list[Any]] = {}
        if redis is not None:
            self._queued, self.summary.unreadable_failed_events = redis.failed_events()

    def total(self) -> int:
        """How many sessions the run will look at (for the progress bar)."""
        total = self.postgres.count_sessions(self.since) if self.postgres else 0
        if self.redis is not None and self.postgres is None:
            total += self.redis.count_sessions()
        # With both stores, sessions only Redis holds are found as the run goes: the bar grows.
        return total

    def batches(self) -> Iterator[list[SessionSource]]:
        """Sessions to import, a batch at a time: PostgreSQL's rows, then Redis-only ones."""
        if self.postgres is not None:
            for rows in self.postgres.session_batches(self.since, self.batch_size):
                sources = {r["id"]: SessionSource(id=r["id"], row=r) for r in rows}
                self._fill(sources)
                yield list(sources.values())
        if self.redis is not None:
            for ids in self.redis.session_id_batches(self.batch_size):
                if self.postgres is not None:
                    in_table = self.postgres.updated_at(ids)
                    # Rows the first pass already saw are done; with --since a row it filtered
                    # out may still have newer live fields in Redis, so that one comes here.
                    ids = [
                        i
                        for i in ids
                        if i not in in_table
                        or (self.since is not None and in_table[i] < self.since)
                    ]
                    if not ids:
                        continue
                    found = self.postgres.rows([i for i in ids if i in in_table])
                else:
                    found = {}
                sources = {i: SessionSource(id=i, row=found.get(i)) for i in ids}
                self._fill(sources)
                if self.since is not None:
                    sources = {i: s for i, s in sources.items() if self._recent(s)}
                yield list(sources.values())

    def _recent(self, source: SessionSource) -> bool:
        """With --since: a session found through Redis counts when its metadata is that new."""
        try:
            meta = read_metadata(source)
        except BrokenRecord:
            return True  # let the import report it
        try:
            stamps = [parse_time((meta or {}).get(k)) for k in ("updated_at", "last_activity_at")]
        except BrokenRecord:
            return True
        return any(t is not None and self.since is not None and t >= self.since for t in stamps)

    def _fill(self, sources: dict[str, SessionSource]) -> None:
        if self.postgres is not None:
            self.postgres.fill(sources)
        if self.redis is not None:
            self.redis.fill(sources)
        for sid, source in sources.items():
            source.queued = self._queued.get(sid, [])

    def merge(self, source: SessionSource) -> Merged:
        """The session as we will keep it (raises BrokenRecord with the reason)."""
        meta = read_metadata(source)
        pg, history, failed = read_events(source, source.queued)
        events = merge_events(pg, history, failed)
        votes = [
            {
                "source_id": v["id"],
                "sub_problem_index": v.get("sub_problem_index"),
                "persona_code": v["persona_code"],
                "persona_name": v.get("persona_name"),
                "recommendation": v["recommendation"],
                "reasoning": v.get("reasoning"),
                "confidence": str(v["confidence"]) if v.get("confidence") is not None else None,
                "conditions": v.get("conditions"),
                "weight": str(v["weight"]) if v.get("weight") is not None else None,
                "created_at": v["created_at"].isoformat(),
            }
            for v in source.votes
        ]
        return merge_session(source.id, row=source.row, meta=meta, events=events, votes=votes)

    def _user(self, source_user_id: str, owner_id: int | None = None) -> Any:
        """Our user for the source's user: by email; for a session imported before whose email
        this run cannot read (Redis alone), the user it belongs to here."""
        if source_user_id in self._users:
            return self._users[source_user_id]
        email = self._emails.get(source_user_id)
        if email is None and self.redis is not None:
            email = self.redis.oauth_emails().get(source_user_id)
        if not email and owner_id is not None:
            owner = get_user_model().objects.filter(pk=owner_id).first()
            if owner is not None:
                self._users[source_user_id] = owner
                self.summary.users_matched += 1
                return owner
        if not email:
            raise BrokenRecord(f"unknown user {source_user_id}: no users row and no email in Redis")
        user, created = user_for_email(email=email, dry_run=self.dry_run)
        if created:
            self.summary.users_created += 1
        else:
            self.summary.users_matched += 1
        self._users[source_user_id] = user
        return user

    def import_one(
        self, source: SessionSource, prior: Prior | None = None, writer: SessionWriter | None = None
    ) -> None:
        """Merge one session and write it; a new one goes to `writer` when there is one."""
        if prior is not None and prior.deleted_here:
            self.summary.sessions_deleted_here += 1
            logger.debug("Session %s was deleted here: not imported again", source.id)
            return
        try:
            merged = self.merge(source)
            user = self._user(merged.source_user_id, prior.owner_id if prior else None)
            if writer is not None and prior is not None and not prior.exists and user is not None:
                writer.put(imported_session_prepare(merged=merged, user=user))
                return
            outcome, events = imported_session_write(
                merged=merged, user=user, dry_run=self.dry_run, prior=prior
            )
        except BrokenRecord as exc:
            self.summary.skipped.append({"session_id": source.id, "reason": str(exc)})
            logger.warning("Skipped session %s: %s", source.id, exc)
            return
        self.summary.events_imported += events
        if outcome == "imported":
            self.summary.sessions_imported += 1
            self.summary.votes_imported += len(merged.votes)
        elif outcome == "updated":
            self.summary.sessions_updated += 1
        else:
            self.summary.sessions_unchanged += 1
        logger.debug("Session %s %s (%d new events)", source.id, outcome, events)

    @staticmethod
    def _finish(writer: SessionWriter) -> None:
        """After Ctrl-C: the sessions already merged are written (a fraction of a second); a
        second Ctrl-C leaves them, once the one being written is whole."""
        try:
            writer.close()
        except KeyboardInterrupt:
            with contextlib.suppress(KeyboardInterrupt):
                writer.close(discard=True)

    def _written(self, new: NewSession) -> None:
        """Count a new session the writer committed (on the writer's thread)."""
        self.summary.sessions_imported += 1
        self.summary.events_imported += new.events
        self.summary.votes_imported += new.votes
        logger.debug("Session %s imported (%d events)", new.session_id, new.events)

    def _priors(self, ids: list[str]) -> dict[str, Prior]:
        """What is here already for a batch: four queries instead of four per session."""
        gone = DeletedHere.objects.filter(session_id__in=ids).values_list("session_id", flat=True)
        priors = {sid: Prior(exists=False, deleted_here=True) for sid in gone}
        owners = dict(DeliberationSession.objects.filter(pk__in=ids).values_list("pk", "user_id"))
        here = set(owners)
        if not here:
            return priors
        records = {
            sid: (fingerprint, stores)
            for sid, fingerprint, stores in ImportedSession.objects.filter(
                session_id__in=here
            ).values_list("session_id", "fingerprint", "stores")
        }
        keys: dict[str, set[str]] = {sid: set() for sid in here}
        rows = SessionEvent.objects.filter(
            session_id__in=here, idempotency_key__isnull=False
        ).values_list("session_id", "idempotency_key")
        for sid, key in rows:  # one batch: a plain fetch, no server-side cursor to hold
            if key:
                keys[sid].add(key)
        for sid in here:
            fingerprint, stores = records.get(sid, (None, ""))
            priors[sid] = Prior(
                exists=True,
                fingerprint=fingerprint,
                event_keys=frozenset(keys[sid]),
                stores=stores,
                owner_id=owners[sid],
            )
        return priors

    def run(self, progress: Any = None) -> Summary:
        """Import everything; Ctrl-C stops between (or inside, rolled back) whole sessions.

        `progress` is a tqdm-like bar (`n`, `total`, `update`, `refresh`) or None.
        """
        # New sessions are written on a thread of their own (importer/writer.py); a dry run
        # writes nothing, and inside a transaction (a test's) that thread could not see it.
        threaded = not self.dry_run and not connection.in_atomic_block
        writer = SessionWriter(self._written) if threaded else None
        try:
            for batch in self.batches():
                reset_queries()  # with DEBUG on, Django keeps every query's SQL otherwise
                if progress is not None and progress.n + len(batch) > (progress.total or 0):
                    progress.total = progress.n + len(batch)  # Redis-only sessions, found late
                    progress.refresh()
                priors = self._priors([s.id for s in batch])
                for source in batch:
                    self.import_one(source, prior=priors.get(source.id, NEW), writer=writer)
                    if progress is not None:
                        progress.update(1)
            if writer is not None:
                writer.close()  # every session merged is written
        except KeyboardInterrupt:
            self.summary.interrupted = True
            if writer is not None:
                self._finish(writer)
            logger.warning("Import interrupted: every session written so far is whole")
        except BaseException:
            if writer is not None:
                writer.close(discard=True)
            raise
        return self.summary
