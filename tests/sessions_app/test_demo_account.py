"""`manage.py ensure_demo_account`: a staff demo login and an API token that works."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def ensure(*args):
    out = StringIO()
    call_command("ensure_demo_account", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_staff_account_and_prints_its_login_and_a_working_token():
    output = ensure()
    user = authenticate(username="demo", password="demo-password")
    assert user is not None and user.is_staff
    token = Token.objects.get(user=user).key
    assert "Created demo account: login 'demo' / password 'demo-password'" in output
    assert f"API token: {token}" in output
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/sessions").status_code == 200


def test_running_it_again_updates_the_password_and_keeps_the_token():
    ensure()
    first = Token.objects.get(user__username="demo").key
    output = ensure("--password", "another-password")
    assert "Updated demo account" in output
    assert authenticate(username="demo", password="another-password") is not None
    assert Token.objects.get(user__username="demo").key == first
