"""`manage.py verify_session_persistence` and its script: the seed's flow, end to end."""

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from sessions_app.models import DeliberationSession
from tests.processes import ROOT, stack_env

# The flow commits and relies on after-commit cache writes, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [
    "created session is in PostgreSQL",
    "created session is in Redis",
    "Redis entry expires within SESSION_CACHE_TTL",
    "running in PostgreSQL",
    "running in Redis",
    "completed with synthesis and cost in PostgreSQL",
    "completed with synthesis and cost in Redis",
    "Redis keys deleted",
    "list still shows it from PostgreSQL",
    "detail answers from PostgreSQL",
    "detail refilled Redis",
]


def run(*args):
    out = StringIO()
    call_command("verify_session_persistence", *args, stdout=out)
    return out.getvalue()


def test_every_check_passes_with_a_line_each_and_the_data_is_removed(clean_redis):
    output = run()
    lines = output.splitlines()
    for name in CHECKS:
        assert any(line.startswith(f"✅ {name}") for line in lines), name
    assert "❌" not in output
    assert lines[-1] == "All checks passed ✅"
    assert not DeliberationSession.objects.exists()
    assert not get_user_model().objects.filter(username__startswith="verify-").exists()
    assert clean_redis.keys("*") == []


def test_json_prints_a_machine_readable_report():
    report = json.loads(run("--json"))
    assert report["ok"] is True and report["kept"] is False
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert all(c["ok"] for c in report["checks"])
    assert report["session_id"].startswith("bo1_")


def test_keep_leaves_the_session_and_its_user_in_place():
    output = run("--keep")
    session = DeliberationSession.objects.get()
    assert f"Kept session {session.id} of user {session.user.username}" in output
    assert session.status == "completed" and session.synthesis_text


def test_a_failing_store_exits_1_with_a_cross(settings):
    caches = {**settings.CACHES, "default": {**settings.CACHES["default"]}}
    caches["default"]["LOCATION"] = "redis://127.0.0.1:1/0"
    settings.CACHES = caches
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("verify_session_persistence", stdout=out)
    assert info.value.returncode == 1
    assert "✅ created session is in PostgreSQL" in out.getvalue()
    assert "❌ created session is in Redis" in out.getvalue()
    assert "All checks passed" not in out.getvalue()
    assert not DeliberationSession.objects.exists()  # cleaned up even after a failure


def test_the_script_runs_the_same_verification_and_exits_0():
    result = subprocess.run(
        [sys.executable, "scripts/verify_session_persistence.py"],
        cwd=ROOT,
        env=stack_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("All checks passed ✅")
    assert result.stdout.count("✅") == len(CHECKS) + 1


def test_the_script_exits_1_when_redis_is_unreachable():
    result = subprocess.run(
        [sys.executable, "scripts/verify_session_persistence.py", "--json"],
        cwd=ROOT,
        env=stack_env(TEST_REDIS_URL="redis://127.0.0.1:1/0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any(not c["ok"] for c in report["checks"])
