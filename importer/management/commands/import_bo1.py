"""manage.py import_bo1: bring the original Board of One service's sessions into this store."""

import contextlib
import json
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from importer.run import Importer, Summary
from importer.services import commits_without_waiting
from importer.sources import PostgresSource, RedisSource, SourceUnavailable
from importer.values import BrokenRecord, parse_time

logger = logging.getLogger("importer")

EXIT_SKIPPED = 2
EXIT_FATAL = 1
EXIT_INTERRUPTED = 130


class Command(BaseCommand):
    help = (
        "Import the sessions of the original Board of One service from its PostgreSQL and/or "
        "Redis (read only there). Exit 0 when everything was imported, 2 when some records "
        "were skipped, 1 on a fatal error, 130 when interrupted (only whole sessions are kept)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database-url", help="the original service's PostgreSQL URL")
        parser.add_argument("--redis-url", help="the original service's Redis URL")
        parser.add_argument(
            "--dry-run", action="store_true", help="read and map everything, write nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument(
            "--since",
            help="only sessions updated at or after this ISO 8601 time (in either store)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=500, help="sessions read per batch (default 500)"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar even on a terminal"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["database_url"] and not options["redis_url"]:
            raise CommandError("give --database-url and/or --redis-url")
        since = None
        if options["since"]:
            try:
                since = parse_time(options["since"], "--since")
            except BrokenRecord as exc:
                raise CommandError(str(exc)) from None
        try:
            summary = self._run(options, since)
        except SourceUnavailable as exc:
            self._fatal(options, str(exc))
            sys.exit(EXIT_FATAL)
        self._report(summary, options)
        if summary.interrupted:
            sys.exit(EXIT_INTERRUPTED)
        if summary.skipped:
            sys.exit(EXIT_SKIPPED)

    def _run(self, options: dict[str, Any], since: Any) -> Summary:
        postgres = PostgresSource(options["database_url"]) if options["database_url"] else None
        try:
            redis = RedisSource(options["redis_url"]) if options["redis_url"] else None
        except SourceUnavailable:
            if postgres is not None:
                postgres.close()
            raise
        try:
            importer = Importer(
                postgres=postgres,
                redis=redis,
                since=since,
                dry_run=options["dry_run"],
                batch_size=options["batch_size"],
            )
            show = sys.stderr.isatty() and not options["no_progress"]
            with (
                contextlib.nullcontext() if options["dry_run"] else commits_without_waiting(),
                tqdm(
                    total=importer.total(),
                    unit="session",
                    desc="Importing" if not options["dry_run"] else "Dry run",
                    disable=not show,
                    file=sys.stderr,
                ) as bar,
            ):
                return importer.run(progress=bar)
        finally:
            if postgres is not None:
                postgres.close()
            if redis is not None:
                redis.close()

    def _fatal(self, options: dict[str, Any], reason: str) -> None:
        logger.error("Import failed: %s", reason)
        if options["json"]:
            self.stdout.write(json.dumps({"error": reason}))
        else:
            self.stderr.write(f"import_bo1: {reason}")

    def _report(self, summary: Summary, options: dict[str, Any]) -> None:
        data = summary.as_dict()
        logger.info("Import summary: %s", json.dumps(data))
        if options["json"]:
            self.stdout.write(json.dumps(data))
            return
        lines = [
            "Dry run: nothing was written." if summary.dry_run else "Import finished.",
            f"Users: {summary.users_matched} matched, {summary.users_created} "
            + ("to create" if summary.dry_run else "created"),
            f"Sessions: {summary.sessions_imported} imported, {summary.sessions_updated} updated, "
            f"{summary.sessions_unchanged} unchanged, {summary.sessions_skipped} skipped"
            + (
                f", {summary.sessions_deleted_here} deleted here (not imported again)"
                if summary.sessions_deleted_here
                else ""
            ),
            f"Events imported: {summary.events_imported}; votes imported: {summary.votes_imported}",
        ]
        if summary.unreadable_failed_events:
            lines.append(f"Unreadable failed-events entries: {summary.unreadable_failed_events}")
        for item in summary.skipped:
            lines.append(f"  skipped {item['session_id']}: {item['reason']}")
        if summary.interrupted:
            lines.append("Interrupted: the sessions above were written whole; rerun to continue.")
        self.stdout.write("\n".join(lines))
