"""Create or update the demo account and print its login and API token."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create or update the demo account (demo / demo-password) and print its API token."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--username", default=os.environ.get("BO1_DEMO_USER", "demo"))
        parser.add_argument(
            "--password", default=os.environ.get("BO1_DEMO_PASSWORD", "demo-password")
        )

    def handle(self, *args, username: str, password: str, **options) -> None:  # type: ignore[no-untyped-def]
        user, created = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} demo account: login '{username}' / password '{password}'")
        self.stdout.write(f"API token: {token.key}")
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        self.stdout.write(f"Dashboard: {base}/   Admin: {base}/admin/   API docs: {base}/api/docs/")
        self.stdout.write(f"Try: curl -H 'Authorization: Token {token.key}' {base}/api/v1/sessions")
