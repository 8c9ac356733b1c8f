"""Scrape cost of `tc metrics serve` with 100, 1,000 and 10,000 run folders (in-process): cold,
warm, after one run changed, and with the periodic full sweep forced.

Targets (reported, not asserted): warm scrape of 1,000 runs under 50 ms; 10,000 runs under 3x the
1,000-run time. A scrape here is what /metrics does: collect + text exposition.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import REPO, WORK

sys.path.insert(0, str(REPO))
from opslab import fs  # noqa: E402
from opslab.metrics.cache import ArtifactCollector  # noqa: E402


def _make_root(n: int) -> str:
    root = WORK / f"metrics-{n}"
    if (root / "runs").is_dir() and len(os.listdir(root / "runs")) == n:
        return str(root)
    shutil.rmtree(root, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TC_ARTIFACTS_DIR": str(root)}
    subprocess.run([sys.executable, "-m", "opslab", "run", "init", "--spec", str(REPO / "fixtures/specs/minimal.json")],
                   env=env, check=True, capture_output=True)
    template = root / "runs" / "minimal"
    for i in range(n - 1):
        shutil.copytree(template, root / "runs" / f"run-{i:05d}")
    return str(root)


def _scrape(collector: ArtifactCollector) -> float:
    start = time.perf_counter()
    collector.exposition()  # exactly what GET /metrics serves
    return time.perf_counter() - start


def _scrape_after_one_change(collector: ArtifactCollector, root: str, i: int) -> float:
    """One run rewritten through tc's own atomic write (so the change feed names it), then a scrape."""
    os.environ["TC_ARTIFACTS_DIR"] = root
    fs.write_atomic(Path(root) / "runs" / "minimal" / "report.md", f"# bench edit {i}\n".encode())
    return _scrape(collector)


def main() -> None:
    WORK.mkdir(exist_ok=True)
    warm, changed, swept = {}, {}, {}
    print("runs     cold scrape   warm scrape   one run changed   full sweep forced (medians of 7)")
    for n in (100, 1_000, 10_000):
        root = _make_root(n)
        collector = ArtifactCollector(root)
        cold = _scrape(collector)
        warm[n] = statistics.median(_scrape(collector) for _ in range(7))
        changed[n] = statistics.median(_scrape_after_one_change(collector, root, i) for i in range(7))
        # The periodic full sweep (every SWEEP_EVERY_S, for edits made outside tc): one stat per run.
        collector.SWEEP_EVERY_S = 0.0
        swept[n] = statistics.median(_scrape(collector) for _ in range(7))
        print(f"{n:>6}   {cold * 1000:9.1f} ms  {warm[n] * 1000:9.3f} ms  {changed[n] * 1000:11.1f} ms  {swept[n] * 1000:13.1f} ms")
    print(f"warm 1,000 runs: {warm[1_000] * 1000:.3f} ms (target < 50 ms)")
    print(f"warm 10,000 / 1,000 ratio: {warm[10_000] / warm[1_000]:.2f} (target < 3)")
    print(f"one run changed 10,000 / 1,000 ratio: {changed[10_000] / changed[1_000]:.2f} (re-reads one run; re-joins the text)")
    print(f"full sweep 10,000 / 1,000 ratio: {swept[10_000] / swept[1_000]:.2f} (one stat per run)")


if __name__ == "__main__":
    main()
