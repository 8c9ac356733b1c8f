"""Benchmark harness: run commands as child processes, alternating, and read wall time and peak RSS.

Numbers are reported as ratios against a baseline measured in the same run; nothing is asserted.
Every figure a script measures is also recorded (`record`): when `make bench` runs the script it
sets TC_BENCH_FIGURES to a file, one JSON line per figure, and writes them into the benchmark history
(benchmarks/history.py, schemas/bench_run.schema.json). Run alone, a script only prints.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench"
FIGURES_ENV = "TC_BENCH_FIGURES"


def installed_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark's child processes: the checkout on PYTHONPATH, with bytecode as an installed tc
    has it (pip compiles a package when it installs it; a checkout's opslab/ has none). Under PYTHONDONTWRITEBYTECODE
    (CI's, the images') every round would otherwise compile opslab's modules again: about 0.1 s that no user's command
    pays, a third of `tc spec validate`'s start. Both sides of a comparison get the same PYTHONPYCACHEPREFIX under
    .bench; the warm-up round fills it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(WORK / "pycache"), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def round_count(default: int) -> int:
    """DEFAULT, or TC_BENCH_ROUNDS when set (quick mode and CI run fewer)."""
    return max(1, int(os.environ.get("TC_BENCH_ROUNDS") or default))


def spread(values: Sequence[float]) -> float | None:
    """The relative noise of VALUES: (max - min) / median; None for fewer than two values or a zero median."""
    if len(values) < 2:
        return None
    med = statistics.median(values)
    return (max(values) - min(values)) / abs(med) if med else None


def _emit(entry: dict) -> None:
    target = os.environ.get(FIGURES_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _num(value: float) -> float:
    return float(f"{value:.6g}")


def record(figure: str, value: float, unit: str, baseline: float | None = None, samples: Sequence[float] | None = None,
           noise: float | None = None) -> None:
    """Record FIGURE (VALUE in UNIT, against BASELINE measured in the same run when there is one) for the history.
    SAMPLES are the per-round values (or per-round ratios subject/baseline) the noise is measured on; without them the
    figure counts as one round with NOISE (default None: not measured)."""
    if samples is not None and len(samples) >= 1:
        n, noise = len(samples), spread(samples)
    else:
        n = 1
    ratio = value / baseline if baseline else None
    _emit({"figure": figure, "unit": unit, "value": _num(value), "baseline": None if baseline is None else _num(baseline),
           "ratio": None if ratio is None else _num(ratio), "rounds": n, "noise": None if noise is None else _num(noise)})


def skipped(what: str, why: str) -> None:
    """Print and record that WHAT was skipped because WHY (a missing tool)."""
    print(f"{what}: skipped, {why}")
    _emit({"skipped": f"{what}: {why}"})


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
            warmup: bool = True, key: str | None = None) -> dict[str, float]:
    """Alternate SUBJECT and BASELINE ROUNDS times (TC_BENCH_ROUNDS overrides); print medians and ratios, and record
    them as KEY.wall and KEY.peak_rss when KEY is given."""
    n = round_count(rounds)
    if warmup:
        measure(subject, env)
        measure(baseline, env)
    subj, base = [], []
    for _ in range(n):
        subj.append(measure(subject, env))
        base.append(measure(baseline, env))
    result = summarize(subj, base)
    print(f"{name}")
    print(f"  subject : {' '.join(subject)[:110]}")
    print(f"  baseline: {' '.join(baseline)[:110]}")
    print(f"  wall median  subject {result['subject_wall']:8.3f} s  baseline {result['baseline_wall']:8.3f} s  ratio {result['wall_ratio']:6.3f}"
          f"  noise {pct(result['wall_noise'])}")
    print(f"  peak RSS     subject {result['subject_rss_mib']:8.1f} MiB baseline {result['baseline_rss_mib']:8.1f} MiB ratio {result['rss_ratio']:6.3f}"
          f"  noise {pct(result['rss_noise'])}")
    if key:
        record_comparison(key, subj, base)
    return result


def pct(noise: float | None) -> str:
    return "-" if noise is None else f"{noise * 100:.1f} %"


def summarize(subject: Sequence[tuple[float, float]], baseline: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Median wall time and maximum peak RSS of each side's (wall, rss) samples, their ratios, and the noise of each
    ratio: the spread (max - min) / median of the per-round ratios (round i pairs the i-th sample of each side)."""
    s_wall, b_wall = statistics.median(w for w, _ in subject), statistics.median(w for w, _ in baseline)
    s_rss, b_rss = max(r for _, r in subject), max(r for _, r in baseline)
    return {"wall_ratio": s_wall / b_wall, "rss_ratio": s_rss / b_rss, "subject_wall": s_wall, "baseline_wall": b_wall,
            "subject_rss_mib": s_rss, "baseline_rss_mib": b_rss,
            "wall_noise": spread([s[0] / b[0] for s, b in zip(subject, baseline, strict=True)]),
            "rss_noise": spread([s[1] / b[1] for s, b in zip(subject, baseline, strict=True)])}


def record_comparison(key: str, subject: Sequence[tuple[float, float]], baseline: Sequence[tuple[float, float]]) -> None:
    """Record KEY.wall (medians, s) and KEY.peak_rss (maxima, MiB) of alternating (wall, rss) samples."""
    r = summarize(subject, baseline)
    record(f"{key}.wall", r["subject_wall"], "s", r["baseline_wall"], samples=[s[0] / b[0] for s, b in zip(subject, baseline, strict=True)])
    record(f"{key}.peak_rss", r["subject_rss_mib"], "MiB", r["baseline_rss_mib"], samples=[s[1] / b[1] for s, b in zip(subject, baseline, strict=True)])
