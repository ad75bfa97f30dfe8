"""Two runs of `make bench` side by side: the code before a change and after it.

`python -m scripts.bench.compare BEFORE.json AFTER.json --title "..."` keeps the two runs'
figures in docs/benchmarks-comparison.json; every BENCHMARKS.md written afterwards shows them
as a table (report.py), with each figure's change and the ones more than 10% worse marked.
Make the two runs back to back on one machine, each from a checkout of its own commit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .config import DOCS

COMPARISON = "benchmarks-comparison.json"
WORSE = 0.10  # a figure this much worse is marked

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


def change(before: float | None, after: float | None, higher: bool) -> tuple[str, bool]:
    """The change as text, and whether it is more than WORSE worse."""
    if before is None or after is None or before == 0:
        return "-", False
    ratio = after / before - 1
    worse = -ratio if higher else ratio
    return f"{ratio:+.0%}", worse > WORSE


def table(comparison: dict[str, Any]) -> list[str]:
    """The comparison as Markdown lines for BENCHMARKS.md."""
    before, after = comparison["before"], comparison["after"]
    higher = set(after["higher_is_better"])
    lines = [
        f"## {comparison['title']}",
        "",
        comparison.get("note", ""),
        "",
        f"Before: {before['label']}, {before['started_at']} to {before['finished_at']} (load "
        f"average {before['load_average_start']} at the start). After: {after['label']}, "
        f"{after['started_at']} to {after['finished_at']} (load average "
        f"{after['load_average_start']}). Figures more than {WORSE:.0%} worse are marked.",
        "",
        "| figure | before | after | change |",
        "|---|---|---|---|",
    ]
    for name, value in after["figures"].items():
        old = before["figures"].get(name)
        text, marked = change(old, value, name in higher)
        cell = lambda v: "-" if v is None else f"{v:,.2f}"  # noqa: E731
        lines.append(f"| {name} | {cell(old)} | {cell(value)} | {text}{' (worse)' * marked} |")
    lines += ["", "| budget | before | after |", "|---|---|---|"]
    old_budgets = {row["budget"]: row for row in before["budgets"]}
    for row in after["budgets"]:
        old = old_budgets.get(row["budget"])
        old_text = f"{old['verdict']} ({old['measured']})" if old else "(not measured)"
        lines.append(f"| {row['budget']} | {old_text} | {row['verdict']} ({row['measured']}) |")
    return [*lines, ""]


def load(directory: Path = DOCS) -> dict[str, Any] | None:
    path = directory / COMPARISON
    return json.loads(path.read_text()) if path.exists() else None


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
    print("\n".join(table(comparison)))


if __name__ == "__main__":
    main()
