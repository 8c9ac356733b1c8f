"""The exporter at scale, on 100, 1,000 and 10,000 copies of a real paper run (reconciled and probed).

Cases (reported, never asserted), each next to its baseline measured in the same run:
- cold start: the first full scrape of a fresh exporter process, against the floor, one Python
  process json-parsing every JSON artifact once (target <= 3x at 1,000 runs; < 10 s at 10,000);
- warm scrape, one run changed, forced full sweep (milliseconds, in-process);
- series and bytes of one scrape at 1,000 runs (target <= 3,000 series), plain and gzip;
- p99 latency under 20 concurrent keep-alive connections (wrk) at 1,000 runs (target < 50 ms) and
  the exporter's RSS before and after the load (flat). TC_BENCH_LOAD_S sets the load's length (20 s),
  TC_BENCH_METRICS_RUNS the sizes, TC_BENCH_ROUNDS the cold start's rounds (3).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness import REPO, WORK, installed_env, record, round_count, skipped

sys.path.insert(0, str(REPO))
from opslab import fs
from opslab.metrics.cache import ArtifactCollector

PY = sys.executable
SPECS = REPO / "fixtures" / "specs"
LOAD_S = int(os.environ.get("TC_BENCH_LOAD_S", "20"))
SIZES = [int(n) for n in os.environ.get("TC_BENCH_METRICS_RUNS", "100,1000,10000").split(",")]  # CI's quick pass: 100

FLOOR = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
n = 0
for path in Path(sys.argv[1]).rglob("*.json"):
    json.loads(path.read_bytes()); n += 1
print(time.perf_counter() - start, n)
"""
COLD = """
import sys, time
from pathlib import Path
from opslab.metrics.server import collector
c = collector(Path(sys.argv[1]))
start = time.perf_counter()
c.exposition()
print(time.perf_counter() - start, c.errors)
"""


def _env(root: Path) -> dict[str, str]:
    return installed_env(TC_ARTIFACTS_DIR=str(root))


def _template() -> Path:
    """One real paper run, reconciled and probed (what an operator's root is made of)."""
    root = WORK / "metrics-template"
    if (root / "runs" / "paper-demo" / "reconciliation.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for args in (("run", "paper", "--spec", str(SPECS / "paper-demo.yaml")), ("reconcile", "--spec", str(SPECS / "paper-demo.yaml")),
                 ("connectivity", "probe", "--spec", str(SPECS / "paper-demo.yaml"), "--url", "http://127.0.0.1:9/")):
        subprocess.run([PY, "-m", "opslab", *args], env=_env(root), capture_output=True)
    return root


def _make_root(n: int) -> Path:
    root = WORK / f"metrics-{n}"
    if (root / "runs").is_dir() and len(os.listdir(root / "runs")) == n:
        return root
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(_template(), root)
    template = root / "runs" / "paper-demo"
    for i in range(n - 1):
        shutil.copytree(template, root / "runs" / f"run-{i:05d}")
    return root


def _timed(code: str, root: Path) -> str:
    return subprocess.run([PY, "-c", code, str(root)], env=_env(root), capture_output=True, text=True, check=True).stdout.split()[0]


def cold_start() -> None:
    rounds = round_count(3)
    print(f"cold start: first full scrape vs json-parsing every artifact once (medians of {rounds}, alternating, fresh processes)")
    for n in SIZES:
        root = _make_root(n)
        floors, colds = [], []
        for _ in range(rounds):
            floors.append(float(_timed(FLOOR, root)))
            colds.append(float(_timed(COLD, root)))
        floor, cold = statistics.median(floors), statistics.median(colds)
        print(f"  {n:>6} runs: cold {cold:7.3f} s   floor {floor:7.3f} s   ratio {cold / floor:5.2f}"
              + ("   (target <= 3x)" if n == 1_000 else "   (target < 10 s)" if n == 10_000 else ""))
        record(f"cold_start.{n}_runs.wall", cold, "s", floor, samples=[c / f for c, f in zip(colds, floors, strict=True)])


def scrape_costs() -> None:
    print("scrape cost in-process (medians of 7): warm, one run changed, forced full sweep")
    for n in SIZES:
        root = _make_root(n)
        col = ArtifactCollector(root)
        col.exposition()

        def one(col: ArtifactCollector = col) -> float:
            start = time.perf_counter()
            col.exposition()
            return time.perf_counter() - start

        warms = [one() * 1000 for _ in range(7)]
        warm = statistics.median(warms) / 1000
        os.environ["TC_ARTIFACTS_DIR"] = str(root)
        changed = []
        for i in range(7):
            fs.write_atomic(root / "runs" / "paper-demo" / "report.md", f"# bench edit {i}\n".encode())
            changed.append(one() * 1000)
        col.SWEEP_EVERY_S = 0.0
        sweeps = [one() * 1000 for _ in range(7)]
        swept = statistics.median(sweeps) / 1000
        print(f"  {n:>6} runs: warm {warm * 1000:8.3f} ms   one changed {statistics.median(changed):8.1f} ms   sweep {swept * 1000:8.1f} ms")
        record(f"scrape.{n}_runs.warm", statistics.median(warms), "ms", samples=warms)
        record(f"scrape.{n}_runs.one_changed", statistics.median(changed), "ms", samples=changed)
        record(f"scrape.{n}_runs.sweep", statistics.median(sweeps), "ms", samples=sweeps)


def series_and_bytes() -> None:
    n = min(max(SIZES), 1_000)
    root = _make_root(n)
    text = b"".join(ArtifactCollector(root).exposition())
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    print(f"series at {n:,} runs: {series} (target <= 3,000 at 1,000 runs; the unbounded exporter served 22,072 there)")
    print(f"scrape bytes at {n:,} runs: plain {len(text):,}   gzip {len(gzip.compress(text)):,}   ratio {len(gzip.compress(text)) / len(text):.3f}")
    record(f"series.{n}_runs", series, "series")
    record(f"scrape_bytes.{n}_runs.gzip", len(gzip.compress(text)), "B", baseline=len(text))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _ms(text: str) -> float:
    """wrk's latency ("850.00us", "5.70ms", "1.02s", "2.00m") in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def under_load() -> None:
    wrk = shutil.which("wrk")
    if not wrk:
        skipped("p99 under load", "wrk is not installed (apt-get install wrk)")
        return
    n = min(max(SIZES), 1_000)
    root = _make_root(n)
    proc = subprocess.Popen([PY, "-m", "opslab", "metrics", "serve", "--port", "0"], env=_env(root), stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"(http://\S+/metrics)", proc.stdout.readline()).group(1)
        deadline = time.monotonic() + 120
        while b"tc_exporter_warming 0.0" not in urllib.request.urlopen(url, timeout=10).read() and time.monotonic() < deadline:
            time.sleep(0.2)
        rss_before = _rss_mib(proc.pid)
        out = subprocess.run([wrk, "-t2", "-c20", f"-d{LOAD_S}s", "--latency", url], capture_output=True, text=True).stdout
        rss_after = _rss_mib(proc.pid)
        p50 = re.search(r"50%\s+(\S+)", out).group(1)
        p99 = re.search(r"99%\s+(\S+)", out).group(1)
        rate = re.search(r"Requests/sec:\s+(\S+)", out).group(1)
        print(f"under load (wrk -t2 -c20 -d{LOAD_S}s, {n:,} runs): p50 {p50}  p99 {p99} (target < 50 ms)  {rate} scrapes/s")
        print(f"  exporter RSS before {rss_before:.1f} MiB, after {rss_after:.1f} MiB (ratio {rss_after / rss_before:.2f}; flat is ~1.0)")
        record("load.p50", _ms(p50), "ms")
        record("load.p99", _ms(p99), "ms")
        record("load.rate", float(rate), "scrapes/s")
        record("load.rss", rss_after, "MiB", baseline=rss_before)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    WORK.mkdir(exist_ok=True)
    cold_start()
    scrape_costs()
    series_and_bytes()
    under_load()


if __name__ == "__main__":
    main()
