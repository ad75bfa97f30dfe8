"""The Grafana dashboard and the alert rules of docs/operations/ name only metrics that exist,
and docs/OPERATIONS.md describes every metric /metrics serves."""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client

from tests.metrics.scrape import parse

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def served_families() -> set[str]:
    names, _ = parse(Client().get("/metrics").content.decode())
    return {family(name) for name in names if name.startswith("bo1_")}


def family(metric: str) -> str:
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def named_in(text: str) -> set[str]:
    return {family(name) for name in re.findall(r"\bbo1_[a-z0-9_]+", text)}


def test_the_dashboard_is_grafana_json_whose_queries_name_served_metrics():
    dashboard = json.loads((DOCS / "operations" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert dashboard["uid"] and len(dashboard["panels"]) >= 10 and all(exprs)
    used = named_in(" ".join(exprs))
    assert used <= served_families(), used - served_families()


def test_the_alert_rules_are_prometheus_rules_on_served_metrics():
    rules = yaml.safe_load((DOCS / "operations" / "prometheus-alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "Bo1PostgresDown", "Bo1RedisDown", "Bo1WorkerDown", "Bo1WebhookOutboxGrowing",
        "Bo1SessionWritesKept", "Bo1WebhookEndpointFailing",
    }  # fmt: skip
    for alert in alerts:
        assert alert["expr"] and alert["labels"]["severity"] and alert["annotations"]["summary"]
    used = named_in(" ".join(a["expr"] for a in alerts))
    assert used <= served_families(), used - served_families()


def test_operations_md_describes_every_served_metric():
    text = (DOCS / "OPERATIONS.md").read_text()
    missing = {name for name in served_families() if name not in text}
    assert not missing


def test_the_readme_configuration_table_has_every_new_variable():
    readme = (DOCS.parent / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## The API")]
    for variable in (
        "BO1_PUBLIC_URL", "BO1_WEBHOOK_RETRY_SCHEDULE", "BO1_WEBHOOK_TIMEOUT",
        "BO1_WEBHOOK_DISABLE_AFTER", "BO1_WEBHOOK_SWEEP_INTERVAL", "BO1_WEBHOOK_ALLOW_PRIVATE",
        "BO1_METRICS_TOKEN", "BO1_METRICS_ENABLED", "BO1_WORKER_METRICS_PORT",
        "BO1_WORKER_METRICS_ADDR", "PROMETHEUS_MULTIPROC_DIR", "BO1_LOG_FORMAT",
    ):  # fmt: skip
        assert f"`{variable}`" in table, variable
