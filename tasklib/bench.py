"""Benchmarks: ratios against baselines measured in the same run (never asserted in tests)."""

from __future__ import annotations

import sys

from invoke import Context, task

from tasklib.common import REPO


@task
def bench(c: Context) -> None:
    """Run every benchmarks/bench_*.py script and print their ratio tables."""
    for script in sorted((REPO / "benchmarks").glob("bench_*.py")):
        print(f"== {script.name}")
        c.run(f"{sys.executable} {script}")


TASKS = [bench]
