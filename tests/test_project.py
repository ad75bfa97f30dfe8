"""Deployment files: docker-compose.yml, Dockerfile and Procfile agree with each other and with
the settings; the Celery app loads; the production web server does not leak connections."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from django.db import connection

from tests.processes import ROOT, database_url, start_web

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("release", "web", "worker")
PROCFILE = dict(
    line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line
)
# Read by the official SDKs rather than by settings.py (DESIGN.md, configuration).
SDK_VARIABLES = {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}

RECORD_SETTINGS_VARIABLES = """
import json, os, environ

class Recording(dict):
    seen = set()
    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)
    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

recording = Recording(os.environ)
environ.Env.ENVIRON = recording
import bo1site.settings  # noqa
print(json.dumps(sorted(recording.seen)))
"""


@pytest.fixture(scope="module")
def settings_variables():
    """Every environment variable bo1site/settings.py reads, found by importing it."""
    result = subprocess.run(
        [sys.executable, "-c", RECORD_SETTINGS_VARIABLES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def shell_line(command) -> str:
    """A compose `sh -c` command as the shell sees it ($$ is compose's escape for $)."""
    assert command[:2] == ["sh", "-c"], command
    return " ".join(command[2].split()).replace("$$", "$")


def test_the_procfile_has_release_web_and_worker_lines():
    assert set(PROCFILE) == {"release", "web", "worker"}
    assert "migrate" in PROCFILE["release"] and "collectstatic" in PROCFILE["release"]
    assert PROCFILE["web"].startswith("gunicorn ") and "${PORT:-8000}" in PROCFILE["web"]
    assert PROCFILE["worker"].startswith("celery -A bo1site worker")


def test_compose_runs_postgres_15_and_redis_7_with_health_checks():
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis", "web", "worker"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_compose_keeps_postgresql_data_in_a_named_volume():
    mounts = SERVICES["postgres"]["volumes"]
    [data] = [m for m in mounts if m.endswith(":/var/lib/postgresql/data")]
    assert data.split(":")[0] in COMPOSE["volumes"]


@pytest.mark.parametrize("name", ["web", "worker", "release"])
def test_compose_runs_the_procfile_line_of_each_process(name):
    assert shell_line(SERVICES[name]["command"]) == PROCFILE[name]


def test_web_and_worker_wait_for_healthy_stores_and_the_release_step():
    for name in ("web", "worker"):
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["release"]["condition"] == "service_completed_successfully"


def test_compose_passes_the_core_variables_to_every_app_container():
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SESSION_CACHE_TTL"} <= set(
            environment
        ), name
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
        assert environment["CELERY_BROKER_URL"] != environment["REDIS_URL"]


def test_every_variable_compose_passes_is_one_the_project_reads(settings_variables):
    procfile_variables = set(re.findall(r"\$\{(\w+)", " ".join(PROCFILE.values())))
    known = settings_variables | SDK_VARIABLES | procfile_variables
    assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SESSION_CACHE_TTL"} <= known
    for name in APP_SERVICES:
        unknown = set(SERVICES[name]["environment"]) - known
        assert not unknown, (name, unknown)


def test_the_dockerfile_builds_the_web_server_of_the_procfile():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(re.match(r"RUN pip install .*-r requirements/base\.txt", line) for line in lines)
    assert any("manage.py collectstatic --noinput" in line for line in lines)
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    assert json.loads(cmd[4:]) == ["sh", "-c", PROCFILE["web"]]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".data"} <= set(ignored)


def test_the_celery_app_loads_as_celery_dash_a_bo1site(settings):
    from bo1site import celery_app
    from bo1site.celery import app

    assert app is celery_app and app.main == "bo1site"
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    # `celery -A bo1site` finds the app the way Celery's CLI does: bo1site.celery_app.
    from celery.app.utils import find_app

    assert find_app("bo1site") is app


@pytest.mark.slow
@pytest.mark.django_db
def test_the_production_web_server_keeps_a_bounded_number_of_database_connections():
    marker = "bo1-conn-check"
    web, base_url = start_web(DATABASE_URL=f"{database_url()}?application_name={marker}")

    def check_database(_):
        with urllib.request.urlopen(f"{base_url}/api/health/db", timeout=10) as response:
            return response.status

    with web:
        with ThreadPoolExecutor(max_workers=20) as clients:
            assert set(clients.map(check_database, range(120))) == {200}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [marker]
            )
            open_connections = cursor.fetchone()[0]
    # Persistent connections on Django's per-request ASGI threads pile up (about 50 here);
    # without them, or with a fixed pool of threads, a handful at most.
    assert open_connections <= 10


def test_make_run_installs_base_requirements_only_and_starts_the_procfiles_lines():
    """What a user's `make run` does is what a deploy does: base.txt, release, web and worker."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "VENV=/nonexistent/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "pip install --quiet -r requirements/base.txt" in dry
    assert "requirements/dev.txt" not in dry
    assert PROCFILE["release"] in dry
    assert re.search(r"exec honcho start -f Procfile -p \d+ web worker'$", dry.strip())


def test_the_request_path_machinery_is_one_package_named_where_it_is_wired_in(settings):
    """Procfile, Dockerfile, compose and settings name bo1site.serving's pieces, which import,
    and each of its modules says what it changes from the stock piece and what that measured."""
    from importlib import import_module

    from django.db import connections
    from django.utils.module_loading import import_string
    from rest_framework.views import APIView

    from bo1site import asgi
    from bo1site.serving.handler import PooledASGIHandler
    from bo1site.serving.negotiation import ContentNegotiation

    worker_class = re.search(r"--worker-class (\S+)", PROCFILE["web"]).group(1)
    assert worker_class == "bo1site.serving.worker.FairUvicornWorker"
    import_string(worker_class)
    assert worker_class in (ROOT / "Dockerfile").read_text()
    assert worker_class in " ".join(SERVICES["web"]["command"])
    assert isinstance(asgi.application, PooledASGIHandler)
    assert connections["default"].__class__.__module__ == "bo1site.serving.db.base"
    assert APIView.content_negotiation_class is ContentNegotiation
    for path in sorted((ROOT / "bo1site" / "serving").rglob("*.py")):
        module = import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if path.name != "__init__.py":
            assert "Measured" in (module.__doc__ or ""), path


def test_bo1site_holds_the_project_wiring_and_the_machinery_package():
    """settings, urls, asgi/wsgi, the Celery app and bo1site/serving; the API's error handling,
    parsers and the outage middleware live with the store that raises them."""
    wiring = {"__init__.py", "asgi.py", "wsgi.py", "celery.py", "settings.py", "settings_test.py"}
    wiring |= {"urls.py", "serving"}
    present = {p.name for p in (ROOT / "bo1site").iterdir() if p.name != "__pycache__"}
    assert present <= wiring, sorted(present - wiring)


def test_no_product_module_is_much_over_400_lines():
    """A module a newcomer can read in one sitting."""
    apps = ("bo1site", "sessions_app", "deliberation", "dashboard", "vocabulary", "importer")
    apps += ("webhooks", "observability")
    long = {
        str(path.relative_to(ROOT)): length
        for app in apps
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
        if (length := len(path.read_text().splitlines())) > 420
    }
    assert not long, long


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BO1_PURGE_BATCH", "abc"),
        ("BO1_RETENTION_DAYS", "2.5"),
        ("BO1_RETENTION_DAYS", "0"),
        ("BO1_DELETED_RETENTION_DAYS", "0"),
        ("BO1_LLM_TIMEOUT", "soon"),
    ],
)
def test_a_setting_that_does_not_parse_is_named_with_its_value(variable, value):
    result = subprocess.run(
        [sys.executable, "-c", "import bo1site.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, variable: value},
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), last
    assert f"{variable}={value!r}" in last or f"{variable}={value}:" in last
