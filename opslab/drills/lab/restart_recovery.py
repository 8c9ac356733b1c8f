"""restart_recovery: a paper run SIGKILLed mid-lifecycle is recovered by the next start, without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from opslab import contracts
from opslab.drills.base import Context, Drill, Observation, base_spec

STEPS = 8


def execute(ctx: Context) -> Observation:
    spec = base_spec("restart-drill", kind="paper")
    spec["engine"]["paper"] = {"steps": STEPS, "bars_per_step": 30}
    path = ctx.spec("restart", spec)
    ctx.tc("data", "prepare", "--spec", str(path))
    env = ctx.env(TC_TEST_STEP_DELAY_MS="200")
    if not ctx.detection:
        env["TC_PAPER_RECOVERY"] = "off"
    journal = ctx.sandbox / "artifacts" / "runs" / "restart-drill" / contracts.artifact("journal").path
    proc = subprocess.Popen([sys.executable, "-m", "opslab", "run", "paper", "--spec", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"event":"paper_step"') >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # the injected fault
    proc.wait()
    restart = subprocess.run([sys.executable, "-m", "opslab", "run", "paper", "--spec", str(path), "--json"], env={**env, "TC_TEST_STEP_DELAY_MS": "0"},
                             capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    steps = [e["data"]["step"] for e in events if e["event"] == "paper_step"]
    recovered = sum(e["event"] == "paper_recovered" for e in events)
    duplicates = len(steps) - len(set(steps))
    verify = ctx.tc("artifacts", "verify", "--all")
    detected = restart.returncode == 0 and recovered == 1 and duplicates == 0 and steps == list(range(1, STEPS + 1)) and verify.code == 0
    observed = (f"restart exited {restart.returncode}; paper_recovered x{recovered}; duplicate step events {duplicates}; "
                f"artifacts verify exit {verify.code}")
    return Observation(detected, observed, 1 if detected else None, "checks",
                       {"restart_exit_code": restart.returncode, "recovered_events": recovered, "duplicate_step_events": duplicates,
                        "steps_journaled": len(steps), "verify_exit_code": verify.code})


DRILL = Drill("restart_recovery", "a paper run killed mid-lifecycle is recovered by the next start",
              "SIGKILL to `tc run paper` after its second step",
              "the next `tc run paper` records paper_recovered, journals every step once, and artifacts verify", execute)
