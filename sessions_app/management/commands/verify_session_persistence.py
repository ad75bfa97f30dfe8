"""`manage.py verify_session_persistence`: the seed's flow against the configured stores."""

import json

from django.core.management.base import BaseCommand, CommandError

from sessions_app.verification import Check, verify_session_persistence


class Command(BaseCommand):
    help = (
        "Create a session for a throwaway user and check it in PostgreSQL and Redis through "
        "running, completed, a Redis flush and a refill; exits 1 on any failure."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--keep", action="store_true", help="leave the data it created")
        parser.add_argument("--json", action="store_true", help="print a machine-readable report")

    def handle(self, *args, keep: bool, json: bool, **options) -> None:  # type: ignore[no-untyped-def]
        as_json = json

        def show(check: Check) -> None:
            if not as_json:
                mark = "✅" if check.ok else "❌"
                detail = f" ({check.detail})" if check.detail else ""
                self.stdout.write(f"{mark} {check.name}{detail}")

        report = verify_session_persistence(keep=keep, on_check=show)
        if as_json:
            self.stdout.write(_dumps(report.as_dict()))
        elif report.ok:
            self.stdout.write("All checks passed ✅")
            if keep:
                self.stdout.write(f"Kept session {report.session_id} of user {report.username}")
        if not report.ok:
            raise CommandError("Session persistence verification failed ❌", returncode=1)


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
