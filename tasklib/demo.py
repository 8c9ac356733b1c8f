"""The demo flow: every step is an idempotent tc operation, so a second run reports ok."""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from invoke import Context, task

from opslab import runs
from opslab.venue import profiles
from tasklib.common import REPO, artifacts_root, opslab_command, tc

DEMO_SPEC = str(REPO / "fixtures" / "specs" / "demo.yaml")
PAPER_SPEC = str(REPO / "fixtures" / "specs" / "paper-demo.yaml")
NODE_SPEC = str(REPO / "fixtures" / "specs" / "node-demo.yaml")
# Demo-only credentials for the lab venue on loopback (both sides read them from the env names the spec declares).
NODE_ENV = {"TC_BINANCE_API_KEY": "demo-lab-key", "TC_BINANCE_API_SECRET": "demo-lab-secret"}


@task
def setup(c: Context) -> None:
    """Report the environment (the Makefile already converged .venv from the locks)."""
    c.run(f"{sys.executable} -m opslab --version")
    where = "the dev image" if os.environ.get("TC_IN_CONTAINER") else Path(sys.prefix).name
    engine = importlib.metadata.version("nautilus_trader")
    locks = f"requirements/engine-{engine}/*.lock"
    print(f"      ok  {where} (nautilus_trader {engine}, Python {sys.version.split()[0]}) matches {locks}; artifacts root: {artifacts_root()}")


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
    node_demo(c)
    connectivity_demo(c)
    drills = tc(c, "drill", "run", "--all", details=False)  # the scorecard ends the summary below
    tc(c, "artifacts", "verify", "--all")
    run_dir = run["data"]["run_dir"]
    counters = run["data"]["counters"]
    print()
    print(f"demo run: {run_dir}")
    print(f"  backtest: {counters['bars_processed']} bars, {counters['orders_submitted']} orders, {counters['fills']} fills, "
          f"{counters['positions_opened']} positions opened, {counters['positions_closed']} closed (real NautilusTrader)")
    print(f"  report:   {run_dir}/report.md")
    print(f"  paper:    {root}/runs/paper-demo/paper/lifecycle.json")
    print(f"  node:     {root}/runs/node-demo/node/lifecycle.json (a real TradingNode against the lab's Binance venue)")
    for line in next_steps(root):
        print(line)
    print()
    print("drill scorecard:")
    for line in drills.get("details", []):
        print(f"  {line}")


def next_steps(root: Path, cwd: Path | None = None) -> list[str]:
    """The demo's closing hints, each a command a fresh shell in CWD runs as printed (no venv activated:
    the venv's `opslab` by its path, since a bare `tc` there is iproute2's /usr/sbin/tc)."""
    opslab = opslab_command(cwd)
    return [f"  verify:   TC_ARTIFACTS_DIR={shlex.quote(str(root))} {opslab} artifacts verify --all",
            f"  metrics:  TC_ARTIFACTS_DIR={shlex.quote(str(root))} {opslab} metrics serve, then curl http://127.0.0.1:9108/metrics (or make stack-up)"]


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


def node_demo(c: Context) -> None:
    """A short live paper node: the Binance-compatible venue on free loopback ports, the node to its
    bar bound, then reconciliation of the node against the venue's record. Real time, so its bytes
    differ run to run; a second demo finds it stopped and says ok."""
    lifecycle = artifacts_root() / "runs" / "node-demo" / "node" / "lifecycle.json"
    if lifecycle.exists() and '"state": "stopped"' in lifecycle.read_text():
        tc(c, "run", "node", "--spec", NODE_SPEC, env=NODE_ENV)
        tc(c, "reconcile", "--spec", NODE_SPEC)
        return
    env = {**os.environ, **NODE_ENV, "TC_ARTIFACTS_DIR": str(artifacts_root())}
    venue = subprocess.Popen([sys.executable, "-m", "opslab", "venue", "serve", "--spec", NODE_SPEC, "--port", "0", "--ws-port", "0",
                              "--speed", "3000", "--reset", "--binance-api", profiles.for_nautilus(runs.versions()["nautilus_trader"])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # the Binance the installed node speaks
    try:
        line = venue.stdout.readline().strip()  # blocks until both servers listen
        if not line.startswith("listening on "):
            raise SystemExit(f"demo: the Binance venue did not start: {line or venue.stderr.read()}")
        words = line.split()
        print(f"      ok  Binance-compatible venue on {words[2]} (websocket {words[4]})")
        tc(c, "run", "node", "--spec", NODE_SPEC, "--venue-url", words[2], "--venue-ws-url", words[4], env=NODE_ENV)
    finally:
        venue.terminate()
        venue.wait(timeout=30)
    tc(c, "reconcile", "--spec", NODE_SPEC)


DEMO_VENUE_PORT = 18765  # preferred, so repeated demos probe the same URL; any free port otherwise


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is not "busy"
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def connectivity_demo(c: Context) -> None:
    """Start the fake venue on loopback, check readiness and probe it, then stop it."""
    port = DEMO_VENUE_PORT if _free(DEMO_VENUE_PORT) else 0
    venue = subprocess.Popen([sys.executable, "-m", "opslab", "venue", "serve", "--port", str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = venue.stdout.readline().strip()  # blocks until the server listens: no sleep needed
        if not line.startswith("listening on "):
            raise SystemExit(f"demo: the fake venue did not start: {line or venue.stderr.read()}")
        url = line.split()[2]  # listening on URL websocket WS
        print(f"      ok  fake venue listening on {url}")
        # Placeholder values for the demo only: readiness checks presence; values are never read or written.
        tc(c, "connectivity", "readiness", "--spec", DEMO_SPEC,
           env={"TC_BINANCE_API_KEY": "demo-placeholder", "TC_BINANCE_API_SECRET": "demo-placeholder"})
        tc(c, "connectivity", "probe", "--spec", DEMO_SPEC, "--url", f"{url}/api/v3/ping")
    finally:
        venue.terminate()
        venue.wait(timeout=30)


@task(help={"name": "drill name from `tc drill list`; all = every lab drill, node = every node drill, every = both kinds"})
def drill(c: Context, name: str = "") -> None:
    """Run one failure drill (or all of a kind) through tc; exit 4 when its failure went undetected."""
    if not name:
        raise SystemExit("drill: give NAME, e.g. make drill NAME=mismatch (NAME=all: the lab drills, NAME=node: the node drills, "
                         "NAME=every: both); see `tc drill list`")
    kinds = {"all": "lab", "lab": "lab", "node": "node", "every": "all"}
    result = tc(c, "drill", "run", *(["--kind", kinds[name]] if name in kinds else [name]), warn=True)
    if result["exit_code"]:
        raise SystemExit(result["exit_code"])


TASKS = [setup, demo, drill]
