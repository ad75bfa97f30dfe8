"""The bench's report: the last run's figures render, and the history is a document of its own."""

import json

from scripts.bench import report
from tests.processes import ROOT


def test_the_report_renders_the_recorded_run_and_links_the_history(tmp_path):
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    text = report.markdown({**results, "budgets": report.budgets(results)}, tmp_path)
    for section in ("## Machine", "## Budgets", "## HTTP endpoints", "## SSE fan-out"):
        assert section in text
    assert "(PERFORMANCE-HISTORY.md)" in text
    history = (ROOT / "docs" / report.HISTORY_DOC).read_text()
    assert "**Worker model**" in history and "**Fair accept**" in history
    # The history lives in the docs, not in the bench's code.
    assert "**Worker model**" not in (ROOT / "scripts" / "bench" / "report.py").read_text()


def test_every_budget_is_read_from_the_recorded_run():
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    assert report.budgets(results) == results["budgets"]
