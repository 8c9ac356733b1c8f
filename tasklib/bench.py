"""Benchmarks: ratios against baselines measured in the same run (never asserted in tests), kept in a history."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from invoke import Context, task

from tasklib.common import REPO


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _engine() -> dict[str, Any]:
    from importlib import metadata

    try:
        nt = metadata.version("nautilus_trader")
    except metadata.PackageNotFoundError:
        nt = None
    return {"nautilus_trader": nt, "python": platform.python_version()}


def _run_script(c: Context, script: Path, extra: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one benchmark script; (its benchmarks[] entry, its figures)."""
    name = script.stem.removeprefix("bench_")
    fd, figures_path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".jsonl")
    os.close(fd)
    try:
        start = time.perf_counter()
        result = c.run(f"{sys.executable} {script}", env={**extra, "TC_BENCH_FIGURES": figures_path}, warn=True, pty=False)
        seconds = time.perf_counter() - start
        lines = Path(figures_path).read_text(encoding="utf-8").splitlines()
    finally:
        os.unlink(figures_path)
    figures, skipped = [], []
    for line in lines:
        entry = json.loads(line)
        if "skipped" in entry:
            skipped.append(entry["skipped"])
        else:
            figures.append({"benchmark": name, **entry})
    status = "ok" if result is not None and result.exited == 0 else "failed"
    return {"name": name, "status": status, "seconds": round(seconds, 1), "skipped": skipped}, figures


@task(help={"quick": "small sizes and few rounds (CI's pass, under 3 minutes), recorded in .bench/history-quick.jsonl"})
def bench(c: Context, quick: bool = False) -> None:
    """Run every benchmarks/bench_*.py script, print their ratio tables, append the run to the benchmark history and
    print what moved since the previous comparable run beyond the noise. Exits non-zero only when a benchmark
    command fails (or the history cannot be written), never on a timing."""
    sys.path.insert(0, str(REPO))
    from benchmarks import history

    mode = "quick" if quick else "full"
    path = history.default_path(mode)
    try:
        history.load(path)  # a broken history is said before the benchmarks run, not after
    except history.HistoryError as exc:
        raise SystemExit(f"bench: {exc}") from None
    extra = {k: v for k, v in history.QUICK.items() if k not in os.environ} if quick else {}
    commit, dirty = history.git_state()
    started, load_start, start = datetime.now(timezone.utc), _load(), time.perf_counter()
    print(f"bench: {mode} run" + (" (" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")" if extra else ""))
    benchmarks, figures = [], []
    for script in sorted((REPO / "benchmarks").glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        entry, found = _run_script(c, script, extra)
        benchmarks.append(entry)
        figures += found
    run = {"schema_version": 1, "mode": mode, "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "seconds": round(time.perf_counter() - start, 1), "commit": commit, "dirty": dirty, "engine": _engine(),
           "machine": {"cpus": os.cpu_count() or 1, "load_start": load_start, "load_end": _load()},
           "settings": history.settings({**os.environ, **extra}), "benchmarks": benchmarks, "figures": figures}
    try:
        before = history.append(path, run)
    except history.HistoryError as exc:
        raise SystemExit(f"bench: {exc}") from None
    print(f"== history: {len(figures)} figures of this {mode} run ({run['seconds']:.0f} s) appended to {path}")
    for line in history.report(history.previous(before, run), run):
        print(line)
    if path.resolve() == history.HISTORY.resolve():  # the committed history: the docs' block follows it
        c.run(f"{sys.executable} {REPO / 'scripts' / 'gen_bench_docs.py'}")
    failed = [b["name"] for b in benchmarks if b["status"] == "failed"]
    if failed:
        raise SystemExit(f"bench: {', '.join(failed)} failed (see above); the other figures are recorded")


TASKS = [bench]
