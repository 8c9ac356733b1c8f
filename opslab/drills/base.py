"""What a drill is, the isolated context it runs in, and what it observes.

A drill runs the real `tc` as a subprocess against its own sandbox artifacts root, so it never
touches the operator's runs or kill switch and exercises the same code paths and exit codes an
operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from opslab import market
from opslab.contracts import SCHEMA_VERSION
from opslab.drills import KINDS


@dataclass
class Completed:
    """Outcome of one tc call inside a drill."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        lines = self.out.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}


@dataclass
class Context:
    """A drill's sandbox and switches."""

    name: str
    sandbox: Path
    detection: bool = True

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for tc subprocesses: the sandbox as artifacts root."""
        env = dict(os.environ)
        env["TC_ARTIFACTS_DIR"] = str(self.sandbox / "artifacts")
        env.update(extra)
        return env

    def tc(self, *args: str, timeout: float = 600, **extra: str) -> Completed:
        """Run `tc ARGS --json` in the sandbox and capture the outcome."""
        proc = subprocess.run([sys.executable, "-m", "opslab", *args, "--json"], env=self.env(**extra),
                              capture_output=True, text=True, timeout=timeout)
        return Completed(proc.returncode, proc.stdout, proc.stderr)

    def spec(self, name: str, data: dict[str, Any]) -> Path:
        """Write a RunSpec for the drill into the sandbox and return its path."""
        path = self.sandbox / f"{name}.json"
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path


@dataclass
class Observation:
    """What the lab reported while the fault was present."""

    detected: bool
    observed: str
    time_to_detect: float | None
    unit: str
    evidence: dict[str, Any] = field(default_factory=dict)
    alert: dict[str, Any] | None = None  # node drills: the notification that arrived
    findings: list[str] = field(default_factory=list)  # node drills: what NautilusTrader itself did


@dataclass(frozen=True)
class Drill:
    """One registered drill."""

    name: str
    summary: str
    fault: str
    expected: str
    execute: Callable[[Context], Observation]
    kind: str = "lab"  # one of KINDS. lab: the lab's own parts, fast; node: the real node, detected through the alerting path
    requires: Callable[[], "str | None"] | None = None  # why the drill cannot run on this machine (and how to fix it), or None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"drill {self.name}: kind {self.kind!r} is none of {KINDS}")

    def missing(self) -> str | None:
        """Why this drill cannot run here (a package to install), or None."""
        return self.requires() if self.requires is not None else None

    @property
    def runbook(self) -> str:
        return f"runbooks/{self.name}.md"


def runbook_link(runbook: str) -> str:
    """Where to read RUNBOOK (runbooks/<name>.md, as the results record it): docs/RUNBOOK in a checkout,
    else the wheel's copy (opslab/_data/runbooks/, pyproject.toml's package-dir), an absolute path."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "_data" / runbook
    if (package.parent / "docs" / runbook).is_file() or not installed.is_file():
        return f"docs/{runbook}"
    return str(installed)


def base_spec(run_id: str, bars: int = 240, kind: str = "backtest") -> dict[str, Any]:
    """A small valid RunSpec for drills (fast: a few hundred bars)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "description": "failure drill",
        "scenario": {"name": "ops_smoke_demo", "version": "1.0.0"},
        "strategy": {"name": "drill", "version": "1"},
        "instrument": market.SYMBOL,
        "venue": market.VENUE,
        "dataset": {"kind": "synthetic", "seed": 11, "start": "2024-01-01T00:00:00Z", "bars": bars},
        "engine": {"kind": kind},
    }
