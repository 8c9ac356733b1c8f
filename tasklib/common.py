"""Helpers shared by the task modules: how to call tc, where artifacts go, ok/changed lines."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from invoke import Context

REPO = Path(__file__).resolve().parent.parent
TC = f"{shlex.quote(sys.executable)} -m opslab"


def opslab_command(cwd: Path | None = None) -> str:
    """The lab's command as a fresh shell in CWD (default: the current folder) runs it, for the hints the
    tasks print: this venv's `opslab` console script (`.venv/bin/opslab` from the checkout), else its
    Python with `-m opslab`. Never a bare `tc`: a shell without the venv runs iproute2's /usr/sbin/tc."""
    here = (cwd or Path.cwd()).resolve()
    bindir = Path(sys.executable).parent  # the venv's bin/ (not resolved: the venv's python is a link)
    script = bindir / "opslab"
    path, tail = (script, "") if script.is_file() and os.access(script, os.X_OK) else (Path(sys.executable), " -m opslab")
    try:
        shown = str(Path(os.path.abspath(path)).relative_to(here))
        shown = shown if "/" in shown else f"./{shown}"
    except ValueError:
        shown = os.path.abspath(path)
    return shlex.quote(shown) + tail


def artifacts_root() -> Path:
    """The artifacts root the tasks use ($TC_ARTIFACTS_DIR, default ./artifacts)."""
    return Path(os.environ.get("TC_ARTIFACTS_DIR") or REPO / "artifacts")


def tc(c: Context, *args: str, env: dict[str, str] | None = None, warn: bool = False, details: bool = True) -> dict[str, Any]:
    """Run `tc ARGS --json`, print its one-line status (and its detail lines unless DETAILS is
    false), and return the parsed result."""
    cmd = f"{TC} {' '.join(shlex.quote(a) for a in args)} --json"
    full_env = {"TC_ARTIFACTS_DIR": str(artifacts_root())}
    full_env.update(env or {})
    res = c.run(cmd, env=full_env, hide="out", warn=True)
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"status": "error", "summary": res.stdout.strip(), "exit_code": res.exited}
    line = out.get("summary") or out.get("error") or ""
    label = "blocked" if res.exited == 3 else out.get("status", "error")
    print(f"{label:>8}  tc {' '.join(args)}: {line}")
    for detail in (out.get("details") or []) if details else []:
        print(f"          {detail}")
    if res.exited != 0 and not warn:
        sys.exit(res.exited)
    out["exit_code"] = res.exited
    return out
