"""A person's data, their call: export all of it as a ZIP, or delete the account with it."""

import datetime as dt
import logging
import zipfile
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError
from rest_framework.authtoken.models import Token
from zipstream import ZipStream

from bo1site.celery import app as celery_app
from bo1site.serving import jsoncodec

from . import services
from .models import FINISHED_STATUSES, DeliberationSession
from .retention import PurgeReport, sessions_delete_for_good
from .selectors import session_events_all
from .snapshots import session_snapshot

logger = logging.getLogger(__name__)

# Sessions read per query while exporting: memory stays bounded whatever the user has.
EXPORT_BATCH = 100
# The fields of each session in the export's index.json.
INDEX_FIELDS = ("id", "problem_statement", "status", "created_at", "completed_at")


def _own_sessions(user: User) -> Any:
    """The sessions an export holds: all of the user's, soft-deleted ones too (they are theirs)."""
    return DeliberationSession.objects.filter(user=user)


def _session_batches(user: User, *fields: str) -> Iterator[list[DeliberationSession]]:
    """The user's sessions, oldest first, EXPORT_BATCH rows per query (keyset on created_at, id)."""
    after: tuple[dt.datetime, str] | None = None
    rows = _own_sessions(user).order_by("created_at", "id")
    # The engine's checkpoint and the search document are no part of what the person sees.
    rows = rows.only(*fields) if fields else rows.defer("checkpoint", "search_vector")
    while True:
        page = rows
        if after is not None:
            page = page.filter(created_at__gte=after[0]).exclude(
                created_at=after[0], id__lte=after[1]
            )
        batch = list(page[:EXPORT_BATCH])
        if not batch:
            return
        yield batch
        after = (batch[-1].created_at, batch[-1].id)


def _index_lines(user: User) -> Iterator[bytes]:
    """index.json, written as it is read: one line per session."""
    yield b'{"user": ' + jsoncodec.dumps(user.get_username()) + b', "sessions": [\n'
    first = True
    for batch in _session_batches(user, *INDEX_FIELDS):
        for session in batch:
            entry = {
                "id": session.id,
                "file": f"sessions/{session.id}.json",
                "problem_statement": session.problem_statement,
                "status": session.status,
                "created_at": session.created_at.isoformat(),
                "completed_at": session.completed_at and session.completed_at.isoformat(),
            }
            yield (b"" if first else b",\n") + jsoncodec.dumps(entry)
            first = False
    yield b"\n]}\n"


def _session_document(session: DeliberationSession) -> Iterator[bytes]:
    """A session's file: {"session": detail, "events": [...]}, events read page by page."""
    detail = {k: v for k, v in session_snapshot(session).items() if k != "user_id"}
    yield b'{"session": ' + jsoncodec.dumps(detail) + b', "events": [\n'
    first = True
    for event in session_events_all(session_id=session.id):
        yield (b"" if first else b",\n") + jsoncodec.dumps(event)
        first = False
    yield b"\n]}\n"


def account_export_chunks(*, user: User) -> Iterator[bytes]:
    """The ZIP of everything the user has, as it is made: index.json, then sessions/<id>.json.

    Each file is read, compressed and sent before the next is read, so memory does not grow
    with the number of sessions or events (only the ZIP's central directory, a few hundred
    bytes per file, waits for the end).
    """
    archive = ZipStream(compress_type=zipfile.ZIP_DEFLATED)
    archive.add(_index_lines(user), "index.json")
    yield from archive.all_files()
    count = 0
    for batch in _session_batches(user):
        for session in batch:
            archive.add(_session_document(session), f"sessions/{session.id}.json")
            yield from archive.all_files()
            count += 1
    yield from archive.finalize()
    logger.info("Exported %d sessions for user %s", count, user.pk)


def export_filename(user: User) -> str:
    return f"bo1-export-{user.get_username()}-{timezone.now():%Y%m%d}.zip"


def account_close(*, user: User) -> int:
    """Step one of an account deletion, in the request: the account stops working at once.

    Its tokens go, its password no longer logs in and it is deactivated; unfinished
    deliberations are killed. Returns how many sessions are left to purge.
    """
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        user.is_active = False
        user.set_unusable_password()
        user.save(update_fields=["is_active", "password"])
        unfinished = list(
            _own_sessions(user).exclude(status__in=FINISHED_STATUSES).values_list("id", flat=True)
        )
        for session_id in unfinished:
            services.session_soft_delete(session_id=session_id)
        left = _own_sessions(user).count()
    logger.info("Account %s closed; %d sessions to purge", user.pk, left)
    return left


def account_purge(*, user_id: int) -> PurgeReport:
    """Step two: every session, event and Redis key of the account, then the account itself.

    Sessions under legal hold stay, and so does the (closed) account row they belong to.
    Harmless to run again: what is already gone is simply not found.
    """
    report = PurgeReport()
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return report
    if user.is_active:
        raise ValueError(f"user {user_id} was not closed first (account_close)")
    ids = list(_own_sessions(user).filter(legal_hold=False).values_list("id", flat=True))
    sessions_delete_for_good(ids, report=report)
    report.held = _own_sessions(user).filter(legal_hold=True).count()
    if report.held == 0 and not _own_sessions(user).exists():
        user.delete()
    logger.info(
        "Account %s deleted: %d sessions, %d events, %d Redis keys; %d kept under legal hold",
        user_id,
        report.sessions,
        report.events,
        report.redis_keys,
        report.held,
    )
    return report


PURGE_ACCOUNT_TASK = "sessions_app.purge_account"


def _queue_purge(user_id: int) -> None:
    # Sent by name: the task (sessions_app/tasks.py) calls back into this module.
    try:
        celery_app.send_task(PURGE_ACCOUNT_TASK, args=[user_id], retry=False)
    except (OperationalError, KombuError, RedisError, OSError) as exc:  # the purge happens anyway
        logger.warning("Account %s purged in the request, the task queue failed: %s", user_id, exc)
        account_purge(user_id=user_id)


def account_delete(*, user: User) -> int:
    """Close the account now; once that is committed, purge it in the worker (or here, when the
    task queue cannot be reached). Returns how many sessions are being deleted."""
    user_id = user.pk
    with transaction.atomic():
        left = account_close(user=user)
        transaction.on_commit(lambda: _queue_purge(user_id))
    return left
