"""`make bench`: seed a large data set, run the real servers, measure them against the budgets.

Run it as `python -m scripts.bench` (see `--help`); it writes docs/BENCHMARKS.md and
docs/benchmarks.json.
"""
