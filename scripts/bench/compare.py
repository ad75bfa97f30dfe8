"""Two runs of `make bench` side by side: the code before a change and after it.

`python -m scripts.bench.compare BEFORE.json AFTER.json --title "..."` keeps the two runs'
figures in docs/benchmarks-comparison.json and writes BENCHMARKS.md again from
docs/benchmarks.json; every BENCHMARKS.md written afterwards shows them as a table (report.py),
with each figure's change and the ones more than 10% worse marked.
Make the two runs back to back on one machine, each from a checkout of its own commit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import report
from .config import DOCS
from .report import COMPARISON

# (label, where in a run's benchmarks.json, True when higher is better)
HTTP_FIGURES = (
    ("unpaced req/s", ("saturated", "rps"), True),
    ("paced p50 (ms)", ("paced", "p50"), False),
    ("web CPU per request (ms)", ("cpu_ms_per_request",), False),
    ("PostgreSQL CPU per request (ms)", ("db_cpu_ms_per_request",), False),
)
OTHER_FIGURES = (
    ("streams: delivery p99 while the list runs (ms)", ("streams", "delay_with_list_ms", "p99")),
    ("streams: list p50 meanwhile (ms)", ("streams", "list_during_streams", "p50")),
    ("100 deliberations: seconds to finish all", ("deliberations", "total_seconds")),
)


def _dig(run: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def figures(run: dict[str, Any]) -> dict[str, tuple[float | None, bool]]:
    """Every compared figure of a run: name -> (value, higher is better)."""
    found: dict[str, tuple[float | None, bool]] = {}
    for endpoint, measured in run.get("http", {}).items():
        for label, path, higher in HTTP_FIGURES:
            found[f"{endpoint}: {label}"] = (_dig(measured, path), higher)
    for label, path in OTHER_FIGURES:
        found[label] = (_dig(run, path), False)
    return found


def _run_summary(run: dict[str, Any], label: str) -> dict[str, Any]:
    return {
        "label": label,
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "load_average_start": run.get("load_average_start"),
        "figures": {name: value for name, (value, _) in figures(run).items()},
        "higher_is_better": [name for name, (_, higher) in figures(run).items() if higher],
        "budgets": run.get("budgets", []),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.compare", description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--title", required=True)
    parser.add_argument("--before-label", default="before")
    parser.add_argument("--after-label", default="after")
    parser.add_argument("--note", default="", help="a paragraph shown above the table")
    args = parser.parse_args(argv)
    comparison = {
        "title": args.title,
        "note": args.note,
        "before": _run_summary(json.loads(args.before.read_text()), args.before_label),
        "after": _run_summary(json.loads(args.after.read_text()), args.after_label),
    }
    (DOCS / COMPARISON).write_text(json.dumps(comparison, indent=2) + "\n")
    print("\n".join(report.comparison_lines(comparison)))
    print(f"{report.rewrite(DOCS)} written")


if __name__ == "__main__":
    main()
