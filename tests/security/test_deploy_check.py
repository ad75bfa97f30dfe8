"""`manage.py check --deploy` with DJANGO_DEBUG=0: clean but for the HTTPS switches."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from tests.processes import ROOT

# The HTTPS settings stay off by default so that DJANGO_DEBUG=0 still serves plain http on
# localhost; each has its own variable (README, "Deploying over HTTPS").
HTTPS_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def deploy_check(**env: str) -> tuple[int, set[str], str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "TEST_REDIS", "TEST_CELERY"))
    }
    environment.update(DJANGO_SETTINGS_MODULE="bo1site.settings", DJANGO_DEBUG="0", **env)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    return result.returncode, set(re.findall(r"\(([\w.]+\.[EW]\d+)\)", output)), output


@pytest.fixture
def strong_key() -> str:
    return secrets.token_urlsafe(64)


def test_deploy_check_is_clean_except_the_https_settings(strong_key):
    code, found, output = deploy_check(DJANGO_SECRET_KEY=strong_key)
    assert code == 0, output
    assert found == HTTPS_WARNINGS, output


def test_deploy_check_is_clean_with_the_https_switches_on(strong_key):
    code, found, output = deploy_check(
        DJANGO_SECRET_KEY=strong_key,
        DJANGO_SECURE_SSL_REDIRECT="1",
        DJANGO_SECURE_COOKIES="1",
        DJANGO_SECURE_HSTS_SECONDS="31536000",
    )
    assert code == 0, output
    assert found == set(), output
    assert "no issues" in output


def test_deploy_check_flags_the_development_secret_key():
    _, found, output = deploy_check()
    assert "security.W009" in found, output
