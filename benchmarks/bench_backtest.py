"""`tc run backtest` on 100,000 bars against a bare-NautilusTrader baseline (same bars, same cadence).

Targets (reported, not asserted): opslab within 1.0x of the baseline in wall time and 1.2x in
peak RSS. Also reports the engine's bars per second for both. TC_BENCH_BACKTEST_SPEC runs another spec
(quick mode: fixtures/specs/demo.yaml, 1,440 bars), TC_BENCH_ROUNDS the rounds (3).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from harness import REPO, WORK, installed_env, pct, measure, record_comparison, round_count, summarize

PY = sys.executable
SPEC = REPO / os.environ.get("TC_BENCH_BACKTEST_SPEC", "fixtures/specs/week-100k.yaml")
ROUNDS = round_count(3)


def main() -> None:
    base_root = WORK / f"bt-base-{SPEC.stem}"  # one per spec: the dataset below is the only one in it
    env = installed_env(TC_ARTIFACTS_DIR=str(base_root))
    env.pop("SOURCE_DATE_EPOCH", None)
    subprocess.run([PY, "-m", "opslab", "data", "prepare", "--spec", str(SPEC)], env=env, check=True, capture_output=True)
    datasets = base_root / "datasets"
    bars_csv = next(datasets.glob("*/bars.csv"))
    bars = sum(1 for _ in bars_csv.open()) - 1
    subject, baseline = [], []
    for i in range(ROUNDS + 1):  # round 0 warms the page cache and is dropped
        root = WORK / f"bt-round-{i}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(datasets, root / "datasets")
        s = measure([PY, "-m", "opslab", "run", "backtest", "--spec", str(SPEC)], {**env, "TC_ARTIFACTS_DIR": str(root)})
        b = measure([PY, str(REPO / "benchmarks" / "baseline_backtest.py"), str(bars_csv)], env)
        if i:
            subject.append(s)
            baseline.append(b)
        shutil.rmtree(root, ignore_errors=True)
    r = summarize(subject, baseline)
    record_comparison("backtest", subject, baseline)
    print(f"tc run backtest vs bare NautilusTrader, {bars} bars, {ROUNDS} alternating rounds (whole process)")
    print(f"  wall median  opslab {r['subject_wall']:7.2f} s  baseline {r['baseline_wall']:7.2f} s  ratio {r['wall_ratio']:.3f} (target <= 1.0)"
          f"  noise {pct(r['wall_noise'])}")
    print(f"  peak RSS     opslab {r['subject_rss_mib']:7.1f} MiB baseline {r['baseline_rss_mib']:7.1f} MiB ratio {r['rss_ratio']:.3f} (target <= 1.15)"
          f"  noise {pct(r['rss_noise'])}")
    print(f"  bars/s (whole process) opslab {bars / r['subject_wall']:,.0f}  baseline {bars / r['baseline_wall']:,.0f}")


if __name__ == "__main__":
    main()
