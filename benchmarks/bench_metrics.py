"""Scrape cost of `tc metrics serve` with 100, 1,000 and 10,000 run folders, cold and warm (in-process).

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

from harness import REPO, WORK

sys.path.insert(0, str(REPO))
from opslab.metrics.collector import ArtifactCollector  # noqa: E402


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


def main() -> None:
    WORK.mkdir(exist_ok=True)
    warm, swept = {}, {}
    print("runs     cold scrape   warm scrape   warm + stat sweep (medians of 7)")
    for n in (100, 1_000, 10_000):
        root = _make_root(n)
        collector = ArtifactCollector(root)
        cold = _scrape(collector)
        warm[n] = statistics.median(_scrape(collector) for _ in range(7))
        # The periodic full sweep (every SWEEP_EVERY_S, for edits made outside tc): one stat per run.
        collector.SWEEP_EVERY_S = 0.0
        swept[n] = statistics.median(_scrape(collector) for _ in range(7))
        print(f"{n:>6}   {cold * 1000:9.1f} ms  {warm[n] * 1000:9.3f} ms  {swept[n] * 1000:9.1f} ms")
    print(f"warm 1,000 runs: {warm[1_000] * 1000:.3f} ms (target < 50 ms)")
    print(f"warm 10,000 / 1,000 ratio: {warm[10_000] / warm[1_000]:.2f} (target < 3)")
    print(f"warm + stat sweep 10,000 / 1,000 ratio: {swept[10_000] / swept[1_000]:.2f} (linear: one stat per run)")


if __name__ == "__main__":
    main()
