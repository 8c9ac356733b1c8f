"""Compatibility: an artifacts root written by the previous release (commit dad8955, before the tree was
reshaped, on NautilusTrader 1.221.0) verifies under this code, and its runs converge `ok` on that engine (the
fixture specs' config hashes are unchanged); on another engine a run command refuses them untouched (a run
id names one spec on one engine, docs/engine-profiles.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import REPO, tc_env
from opslab import runs

OLD_ROOT = REPO / "fixtures" / "compat" / "root-v0.1-dad8955"
RUNNING = runs.versions()["nautilus_trader"]
SPECS = {"demo": ("run", "backtest", "fixtures/specs/demo.yaml"), "paper-demo": ("run", "paper", "fixtures/specs/paper-demo.yaml")}


def _tc(root, *args):
    out = subprocess.run([sys.executable, "-m", "opslab", *args, "--json"], cwd=REPO, env=tc_env(root), capture_output=True, text=True,
                         timeout=300)
    return out.returncode, json.loads(out.stdout.splitlines()[-1]) if out.stdout.strip() else {}, out.stderr


def test_a_root_of_the_previous_release_verifies_and_its_runs_converge_ok(tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(OLD_ROOT, root, symlinks=True)
    code, doc, err = _tc(root, "artifacts", "verify", "--all")
    assert code == 0, (doc, err)
    for run_id, (group, verb, spec) in SPECS.items():
        meta = json.loads((root / "runs" / run_id / "metadata.json").read_text())
        code, doc, err = _tc(root, "spec", "validate", spec)
        assert code == 0 and doc["data"]["config_hash"] == meta["config_hash"], (run_id, doc, err)
        before = {p: p.read_bytes() for p in (root / "runs" / run_id).rglob("*") if p.is_file()}
        code, doc, err = _tc(root, group, verb, "--spec", spec)
        made_on = meta["versions"]["nautilus_trader"]
        if made_on == RUNNING:
            assert (code, doc.get("status")) == (0, "ok"), (run_id, doc, err)
        else:
            assert code == 2 and f"run {run_id!r} ran on another engine (nautilus_trader {made_on}; this environment has {RUNNING})" in err
        assert "Traceback" not in err
        after = {p: p.read_bytes() for p in (root / "runs" / run_id).rglob("*") if p.is_file()}
        assert after == before, f"{run_id}: converging an old run rewrote files"
    code, doc, err = _tc(root, "artifacts", "verify", "--all")
    assert code == 0, (doc, err)
