"""Apply the retention policy: delete for good the sessions past their keeping time."""

import argparse
import math

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from sessions_app.retention import sessions_purge_expired


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return seconds


class Command(BaseCommand):
    help = (
        "Delete sessions older than BO1_RETENTION_DAYS and soft-deleted ones older than "
        "BO1_DELETED_RETENTION_DAYS (rows, events, Redis keys); legal holds are kept."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go; delete nothing"
        )
        parser.add_argument(
            "--batch-size",
            type=_at_least_one,
            default=None,
            help="sessions per transaction (BO1_PURGE_BATCH)",
        )
        parser.add_argument(
            "--pause",
            type=_seconds,
            default=None,
            help="seconds to sleep between batches (default: twice as long as each batch took)",
        )

    def handle(  # type: ignore[no-untyped-def]
        self, *args, dry_run: bool, batch_size: int | None, pause: float | None, **options
    ) -> None:
        try:
            report = sessions_purge_expired(dry_run=dry_run, batch_size=batch_size, pause=pause)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        verb = "Would purge" if dry_run else "Purged"
        self.stdout.write(
            f"{verb} {report.sessions} sessions ({report.expired} past retention, "
            f"{report.deleted} soft-deleted), {report.events} events, "
            f"{report.redis_keys} Redis keys; kept {report.held} under legal hold"
        )
