"""`manage.py reconcile_sessions`: repair what an outage left behind."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, InterfaceError

from deliberation.reconcile import reconcile_sessions


class Command(BaseCommand):
    help = (
        "Apply writes a worker kept during a PostgreSQL outage, rewrite Redis entries that "
        "disagree with PostgreSQL, and requeue sessions whose worker is gone."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--dry-run", action="store_true", help="show, change nothing")

    def handle(self, *args, dry_run: bool, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            report = reconcile_sessions(dry_run=dry_run)
        # Nothing is left half-done: each repair is its own write.
        except (DatabaseError, InterfaceError) as exc:
            raise CommandError(f"PostgreSQL unavailable, try again later: {exc}") from exc
        verb = "would" if dry_run else "did"
        for label, ids in (
            ("apply kept writes of", report.applied),
            ("repair the hot entry of", report.repaired),
            ("requeue", report.requeued),
        ):
            for session_id in ids:
                self.stdout.write(f"{verb} {label} {session_id}")
        self.stdout.write(
            f"{'Dry run: ' if dry_run else ''}{len(report.applied)} kept-write sessions, "
            f"{len(report.repaired)} hot entries repaired, {len(report.requeued)} requeued"
        )
