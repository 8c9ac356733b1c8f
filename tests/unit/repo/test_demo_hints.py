"""The demo's closing hints run as printed from a fresh shell: no venv on PATH, where a bare `tc` is
iproute2's traffic-control program (/usr/sbin/tc), not the lab."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import REPO
from tasklib import demo


def _fresh_env() -> dict[str, str]:
    """A login shell's environment: the system PATH only, no venv, no PYTHONPATH, no TC_ settings."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def test_every_hint_names_the_lab_by_a_path_never_a_bare_tc(tmp_path: Path):
    for cwd in (REPO, tmp_path):
        for line in demo.next_steps(tmp_path / "artifacts", cwd):
            command = line.split(":", 1)[1].strip()
            words = command.split()
            program = next(w for w in words if "=" not in w)
            assert program not in ("tc", "opslab"), f"{line}: a fresh shell without the venv finds no such lab command"
            assert "/" in program, line


def test_the_verify_hint_runs_as_printed_from_a_fresh_shell(tmp_path: Path):
    root = tmp_path / "art root"  # a space: the hint quotes it
    root.mkdir()
    for cwd in (REPO, tmp_path):
        verify = next(line for line in demo.next_steps(root, cwd) if "verify:" in line).split(":", 1)[1].strip()
        proc = subprocess.run(["sh", "-c", verify + " --json"], cwd=cwd, env=_fresh_env(), capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0 and result["status"] == "ok", (verify, result, proc.stderr)
