"""The demo flow: every step is an idempotent tc operation, so a second run reports ok."""

from __future__ import annotations

from invoke import Context, task

from tasklib.common import REPO, artifacts_root, tc

DEMO_SPEC = str(REPO / "fixtures" / "specs" / "demo.yaml")
PAPER_SPEC = str(REPO / "fixtures" / "specs" / "paper-demo.yaml")


@task
def setup(c: Context) -> None:
    """Report the environment (the Makefile already converged .venv from the locks)."""
    c.run(f"{__import__('sys').executable} -m opslab --version")
    print(f"      ok  .venv matches requirements/*.lock; artifacts root: {artifacts_root()}")


@task
def demo(c: Context) -> None:
    """Prepare the dataset, run the demo spec, verify every artifact, and say where the run is."""
    root = artifacts_root()
    print(f"demo: artifacts root {root}")
    tc(c, "spec", "validate", DEMO_SPEC)
    tc(c, "data", "prepare", "--spec", DEMO_SPEC)
    run = tc(c, "run", "backtest", "--spec", DEMO_SPEC)
    safety_demo(c)
    tc(c, "reconcile", "--spec", PAPER_SPEC)
    tc(c, "artifacts", "verify", "--all")
    run_dir = run["data"]["run_dir"]
    counters = run["data"]["counters"]
    print()
    print(f"demo run: {run_dir}")
    print(f"  backtest: {counters['bars_processed']} bars, {counters['orders_submitted']} orders, {counters['fills']} fills, "
          f"{counters['positions_opened']} positions opened, {counters['positions_closed']} closed (real NautilusTrader)")
    print(f"  report:   {run_dir}/report.md")
    print(f"  paper:    {root}/runs/paper-demo/paper/lifecycle.json")
    print(f"  verify:   tc artifacts verify --all   (TC_ARTIFACTS_DIR={root})")


def safety_demo(c: Context) -> None:
    """Show both kill switch paths once: engaged -> paper blocked (exit 3) -> released -> paper runs."""
    lifecycle = artifacts_root() / "runs" / "paper-demo" / "paper" / "lifecycle.json"
    if not (lifecycle.exists() and '"state": "stopped"' in lifecycle.read_text()):
        tc(c, "killswitch", "engage", "--reason", "demo: show the paper gate")
        blocked = tc(c, "run", "paper", "--spec", PAPER_SPEC, warn=True)
        if blocked["exit_code"] != 3:
            raise SystemExit(f"demo: expected the engaged kill switch to block the paper run (exit 3), got {blocked['exit_code']}")
        tc(c, "killswitch", "release", "--reason", "demo: gate shown, releasing")
    tc(c, "run", "paper", "--spec", PAPER_SPEC)


TASKS = [setup, demo]
