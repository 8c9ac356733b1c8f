"""Shared fixtures: run the real `tc` in a subprocess against a temporary artifacts root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
SPECS = FIXTURES / "specs"
EPOCH = "1700000000"


@dataclass
class Completed:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def tc_env(artifacts: Path, **extra: str) -> dict[str, str]:
    """Environment for a tc subprocess: this checkout first on the path, the given artifacts root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TC_") and k != "SOURCE_DATE_EPOCH"}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TC_ARTIFACTS_DIR"] = str(artifacts)
    env.update(extra)
    return env


def node_root(tmp_path: Path, monkeypatch: Any, creds: dict[str, str]) -> Path:
    """A node test's artifacts root (TMP_PATH/artifacts), set as TC_ARTIFACTS_DIR in this process with the venue's
    credentials CREDS (the in-process venue reads them from the spec's environment names); the root."""
    root = tmp_path / "artifacts"
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(root))
    for name, value in creds.items():
        monkeypatch.setenv(name, value)
    return root


def run_tc(*args: str, artifacts: Path, cwd: Path | None = None, timeout: float = 600, **env: str) -> Completed:
    """Run `python -m opslab ARGS` and capture its exit code, stdout and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "opslab", *args],
        cwd=cwd or REPO, env=tc_env(artifacts, **env), capture_output=True, text=True, timeout=timeout,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


MATRIX_EVIDENCE = REPO / "fixtures" / "evidence" / "drill-matrix.json"


def add_matrix_evidence(root: Path) -> None:
    """Record the committed drill matrix (a real `tc drill matrix` run, docs/upgrading.md's evidence) in ROOT through
    the matrix's own writer: `make demo` does not run the two-engine matrix, and the
    dashboard's upgrade-canary panels must have data like every other panel."""
    code = f"import json; from opslab.drills import matrix; matrix.record(json.loads(open({str(MATRIX_EVIDENCE)!r}).read()))"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(root), check=True, timeout=60)


@pytest.fixture(scope="session")
def node_drill_matrix(tmp_path_factory):
    """One `tc drill matrix --keep` for the whole session, (its artifacts root, the kept engine roots, its result):
    tests/integration/test_drill_matrix.py reads the matrix, test_node_drills.py the running engine's drill root
    from it, so the node drills run once per engine instead of twice on this one (CI time, issue 31)."""
    base = tmp_path_factory.mktemp("matrix")
    root, keep = base / "artifacts", base / "engines"
    # Three drills at once: each waits mostly for its alert, so the suite takes about half the time on 2 cores.
    return root, keep, run_tc("drill", "matrix", "--keep", str(keep), "--jobs", "3", "--json", artifacts=root, timeout=3600)


@pytest.fixture
def lab(tmp_path: Path):
    """A callable running tc against a fresh artifacts root (tmp_path/artifacts) with a fixed clock."""
    root = tmp_path / "artifacts"

    def call(*args: str, **env: str) -> Completed:
        env.setdefault("SOURCE_DATE_EPOCH", EPOCH)
        return run_tc(*args, artifacts=root, **env)

    call.root = root  # type: ignore[attr-defined]
    return call


def wait_for_paper_steps(journal: Path, n: int, proc: subprocess.Popen) -> None:
    """Wait (bounded, polling) until a paper run's journal holds N paper_step events."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"event":"paper_step"') >= n:
            return
        time.sleep(0.05)
    pytest.fail("paper run did not reach the expected step")


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ROOT and its bytes, by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def backtest_set(root: Path, name: str, indices: range | list[int], **env: str) -> list[str]:
    """Run a small real backtest as run NAME-<index> under ROOT for each of INDICES (what an Indexed Job's pods write;
    fixtures/specs/minimal.json with the index's run id, about 2 s each); their run ids."""
    spec = json.loads((SPECS / "minimal.json").read_text())
    env = {"SOURCE_DATE_EPOCH": EPOCH, **env}
    run_ids = [f"{name}-{index}" for index in indices]
    for run_id in run_ids:
        path = root.parent / f"{run_id}.spec.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**spec, "run_id": run_id}))
        done = run_tc("run", "backtest", "--spec", str(path), artifacts=root, **env)
        assert done.code == 0, done.err
    return run_ids


@pytest.fixture(scope="session")
def sweep_root(tmp_path_factory) -> Path:
    """An artifacts root holding runs sweep-0, sweep-1, sweep-2 (real backtests), built once: copy it before changing it."""
    root = tmp_path_factory.mktemp("sweep") / "artifacts"
    backtest_set(root, "sweep", range(3))
    return root
