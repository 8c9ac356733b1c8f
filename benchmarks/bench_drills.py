"""The node drill suite's time: `tc drill run --kind node --jobs N` on the running engine profile, the suite's wall
time against its budget (issue 28, item 5: one engine's whole node suite in at most 240 s on a 2-core machine) and
each drill's own seconds (its result's `seconds`).

TC_BENCH_DRILL_JOBS sets N (default 3, what the test suite runs); TC_BENCH_NODE_DRILLS a comma-separated subset
(quick mode: two drills; then there is no budget to compare with and the suite figure has no baseline).
A drill that goes undetected fails the benchmark: its time would not be the suite's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from harness import REPO, WORK, installed_env, record, skipped

sys.path.insert(0, str(REPO))

from opslab.drills.node import stack

BUDGET_S = 240.0
JOBS = int(os.environ.get("TC_BENCH_DRILL_JOBS") or 3)
CHOSEN = [name for name in (os.environ.get("TC_BENCH_NODE_DRILLS") or "").split(",") if name]


def main() -> None:
    why = stack.missing()
    if why:
        skipped("node drill suite", why)
        return
    root = WORK / "drills" / "artifacts"
    shutil.rmtree(root.parent, ignore_errors=True)
    which = CHOSEN or ["--kind", "node"]
    env = installed_env(TC_ARTIFACTS_DIR=str(root))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "opslab", "drill", "run", *which, "--jobs", str(JOBS), "--json"], env=env,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tc drill run exited {done.returncode}: {(done.stderr or done.stdout)[-800:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])["data"]["results"]
    print(f"node drill suite: {len(results)} drill(s), --jobs {JOBS}: {wall:.1f} s" +
          ("" if CHOSEN else f" against a budget of {BUDGET_S:.0f} s (ratio {wall / BUDGET_S:.2f})"))
    record("node_suite.wall", wall, "s", baseline=None if CHOSEN else BUDGET_S)
    for result in results:
        print(f"  {result['drill']:<28} {result['seconds']:>6.1f} s  time to detect {result['time_to_detect']['value']} ms")
        record(f"node_drill.{result['drill']}", result["seconds"], "s")


if __name__ == "__main__":
    main()
