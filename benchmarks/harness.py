"""Benchmark harness: run commands as child processes, alternating, and read wall time and peak RSS.

Numbers are reported as ratios against a baseline measured in the same run; nothing is asserted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench"


def measure(cmd: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process (os.wait4 gives that child's own rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024


def compare(name: str, subject: Sequence[str], baseline: Sequence[str], rounds: int = 5, env: dict[str, str] | None = None,
            warmup: bool = True) -> dict[str, float]:
    """Alternate SUBJECT and BASELINE ROUNDS times; print medians and ratios."""
    if warmup:
        measure(subject, env)
        measure(baseline, env)
    subj, base = [], []
    for _ in range(rounds):
        subj.append(measure(subject, env))
        base.append(measure(baseline, env))
    result = summarize(subj, base)
    print(f"{name}")
    print(f"  subject : {' '.join(subject)[:110]}")
    print(f"  baseline: {' '.join(baseline)[:110]}")
    print(f"  wall median  subject {result['subject_wall']:8.3f} s  baseline {result['baseline_wall']:8.3f} s  ratio {result['wall_ratio']:6.3f}")
    print(f"  peak RSS     subject {result['subject_rss_mib']:8.1f} MiB baseline {result['baseline_rss_mib']:8.1f} MiB ratio {result['rss_ratio']:6.3f}")
    return result


def summarize(subject: Sequence[tuple[float, float]], baseline: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Median wall time and maximum peak RSS of each side's (wall, rss) samples, and their ratios."""
    s_wall, b_wall = statistics.median(w for w, _ in subject), statistics.median(w for w, _ in baseline)
    s_rss, b_rss = max(r for _, r in subject), max(r for _, r in baseline)
    return {"wall_ratio": s_wall / b_wall, "rss_ratio": s_rss / b_rss, "subject_wall": s_wall, "baseline_wall": b_wall,
            "subject_rss_mib": s_rss, "baseline_rss_mib": b_rss}
