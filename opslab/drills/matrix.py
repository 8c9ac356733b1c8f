"""The upgrade canary: every node drill on each engine profile, side by side (`tc drill matrix`).

Each engine runs in its own environment (the checkout's .venv-VERSION, built by `make setup [ENGINE=VERSION]`;
.venv is a link to the default engine's), as a `tc drill run` child process against a scratch artifacts root, so the drills,
their alerting path and their findings are exactly those of `tc drill run --kind node` on that release.
The cells keep each drill's whole result; a drill's row is marked changed when its verdict, its alert or
the wording of a finding (numbers set aside: they move run to run) differs between engines.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from opslab import clock, contracts, fs, runs
from opslab.contracts import SCHEMA_VERSION
from opslab.drills import runner
from opslab.drills.registry import DRILLS
from opslab.errors import EXIT_CODES, InputError
from opslab.report import html
from opslab.result import Result

CHECKOUT = Path(__file__).resolve().parents[2]  # opslab/drills/matrix.py -> the checkout holding .venv*
ENGINE_RE = re.compile(r"^\d{1,3}\.\d{1,4}\.\d{1,4}(?:(?:a|b|rc)\d{1,3})?$")
ENGINE_TIMEOUT_S = 1800  # one engine's whole node-drill suite (about 150 s here)
NUMBER = re.compile(r"\d+(?:\.\d+)?")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Environment:
    """One engine profile's environment: the release it holds and its interpreter."""

    engine: str
    python: Path
    folder: str  # relative to the checkout, e.g. .venv-1.231.0


def _installed(venv: Path) -> str | None:
    """The nautilus_trader release VENV holds, from its dist-info folder's name (no interpreter started)."""
    for site in sorted(venv.glob("lib/python3.*/site-packages"))[:4]:
        for info in sorted(site.glob("nautilus_trader-*.dist-info"))[:2]:
            version = info.name[len("nautilus_trader-"):-len(".dist-info")]
            if ENGINE_RE.match(version):
                return version
    return None


def _running() -> str | None:
    """The nautilus_trader release this interpreter holds (from its metadata; nothing imported), if any."""
    try:
        version = metadata.version("nautilus_trader")
    except metadata.PackageNotFoundError:
        return None
    return version if ENGINE_RE.match(version) else None


def environments(home: Path = CHECKOUT) -> dict[str, Environment]:
    """Engine release -> its environment, for every .venv* in HOME that holds NautilusTrader, and this interpreter
    when it holds a release none of them does (the image: NautilusTrader installed with no venv)."""
    found: dict[str, Environment] = {}
    for venv in sorted(home.glob(".venv*"))[:32]:
        if venv.is_symlink():  # .venv: a link to the default engine's .venv-VERSION, found under its own name
            continue
        python = venv / "bin" / "python"
        engine = _installed(venv) if python.exists() else None
        if engine and engine not in found:
            found[engine] = Environment(engine, python, venv.name)
    engine = _running()
    if engine and engine not in found:
        found[engine] = Environment(engine, Path(sys.executable), "this interpreter")
    return found


def choose(requested: str | None, home: Path = CHECKOUT) -> list[Environment]:
    """The environments for --engines (comma-separated releases; default every one found), oldest first."""
    found = environments(home)
    if requested is None:
        wanted = sorted(found, key=_release_key)
    else:
        wanted = [item.strip() for item in requested.split(",") if item.strip()]
        if not wanted or len(wanted) > 8:
            raise InputError(f"--engines {requested!r}: expected 1 to 8 comma-separated NautilusTrader releases, e.g. 1.221.0,1.231.0")
        for engine in wanted:
            if not ENGINE_RE.match(engine):
                raise InputError(f"--engines: {engine!r} is not a release number (expected e.g. 1.231.0)")
        if len(set(wanted)) != len(wanted):
            raise InputError(f"--engines {requested!r}: a release is named twice")
    have = ", ".join(f"{e.engine} ({e.folder})" for e in found.values()) or "none"
    for engine in wanted:
        if engine not in found:
            raise InputError(f"--engines: no environment holds nautilus_trader {engine} in {home} (found: {have}); "
                             f"build it with `make setup ENGINE={engine}` (docs/engine-profiles.md)")
    if not wanted:
        raise InputError(f"tc drill matrix: no environment with NautilusTrader in {home}: run `make setup` first")
    return [found[engine] for engine in sorted(wanted, key=_release_key)]


def _release_key(engine: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", engine))


def node_drills(names: list[str] | None) -> list[str]:
    """The node drills to run: NAMES (each must be a node drill) or all of them."""
    every = [name for name, drill in DRILLS.items() if drill.kind == "node"]
    if not names:
        return every
    for name in names:
        if name not in every:
            raise InputError(f"--drill {name!r}: not a node drill; node drills: {', '.join(every)}")
    return list(dict.fromkeys(names))


def _child_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TC_ARTIFACTS_DIR=str(root), PYTHONPATH=str(CHECKOUT))  # this checkout's opslab, whichever environment runs it
    return env


def _run_engine(env: Environment, names: list[str], scratch: Path, progress: Progress | None, jobs: int = 1) -> dict:
    """Run NAMES on ENV in a scratch root, JOBS at once; the engine's row (exit code, seconds, error) and its results."""
    root = scratch / env.engine / "artifacts"
    started = time.monotonic()
    every = names == node_drills(None)
    chosen = ["--kind", "node"] if every else names
    cmd = [str(env.python), "-m", "opslab", "drill", "run", *chosen, "--jobs", str(jobs), "--json"]
    # the child announces each drill as it starts and ends (its events, passed on below)
    code, err = _child(cmd, root, lambda text: progress and progress(f"{env.engine}: {text}"))
    error = None if code in (0, EXIT_CODES["check"]) else (err.strip().splitlines() or [f"exit {code}"])[-1][:500]
    results = {}
    for name in names:
        doc = runner.stored_result(contracts.artifact("drill_result").at(root, name))
        if doc is not None:
            results[name] = doc
    python = _python_version(env)
    row = {"engine": env.engine, "environment": env.folder, "python": python, "exit_code": code, "jobs": jobs,
           "seconds": round(time.monotonic() - started, 1), "error": error}
    return {"row": row, "results": results}


def _child(cmd: list[str], root: Path, say: Callable[[str], object]) -> tuple[int, str]:
    """Run one `tc drill run` child; pass its progress events on as they come; (exit code, its stderr's tail)."""
    with tempfile.TemporaryFile() as err, subprocess.Popen(cmd, cwd=CHECKOUT, env=_child_env(root), stdout=subprocess.PIPE,
                                                           stderr=err, text=True) as proc:
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            proc.kill()

        watchdog = threading.Timer(ENGINE_TIMEOUT_S, stop)
        watchdog.start()
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") and isinstance(event.get("message"), str):
                    say(event["message"][:200])
            code = proc.wait()
        finally:
            watchdog.cancel()
        err.seek(max(0, err.seek(0, os.SEEK_END) - 4096))
        tail = err.read().decode("utf-8", "replace")
    return code, (f"timed out after {ENGINE_TIMEOUT_S} s" if fired.is_set() else tail)


def _python_version(env: Environment) -> str:
    if env.python == Path(sys.executable):
        return platform.python_version()
    cfg = env.python.parent.parent / "pyvenv.cfg"
    try:
        for line in fs.read_input(cfg, "pyvenv.cfg", 1 << 14).decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info"):
                return value.strip()
    except (OSError, InputError):
        pass
    return "unknown"


def _shape(text: str) -> str:
    """A finding's wording with its numbers set aside."""
    return NUMBER.sub("#", text)


def differences(cells: dict[str, dict]) -> list[str]:
    """What differs for one drill between the engines that have a result (a line each)."""
    if len(cells) < 2:
        return []
    engines = list(cells)
    changes = []

    def differ(label: str, pick: Callable[[dict], object]) -> None:
        values = {engine: pick(cells[engine]) for engine in engines}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            changes.append(f"{label}: " + "; ".join(f"{engine} {values[engine]}" for engine in engines))

    differ("verdict", lambda c: c["verdict"])
    differ("alert", lambda c: (c.get("alert") or {}).get("alertname"))
    findings = {engine: cells[engine].get("findings") or [] for engine in engines}
    for i in range(max(map(len, findings.values()))):
        texts = {engine: found[i] if i < len(found) else None for engine, found in findings.items()}
        if len({_shape(t) if t else None for t in texts.values()}) > 1:
            changes.append(f"finding {i + 1} reads differently: " + " | ".join(f"{engine}: {texts[engine] or '(none)'}" for engine in engines))
    return changes


def _document(rows: list[dict], names: list[str], results: dict[str, dict[str, dict]]) -> dict:
    drills = []
    for name in names:
        cells = {engine: results[engine][name] for engine in results if name in results[engine]}
        changes = differences(cells)
        drills.append({"drill": name, "runbook": DRILLS[name].runbook, "cells": cells, "changed": bool(changes), "changes": changes})
    complete = sum(len(d["cells"]) == len(rows) for d in drills)
    passed = {row["engine"]: sum(d["cells"].get(row["engine"], {}).get("verdict") == "pass" for d in drills) for row in rows}
    return {"schema_version": SCHEMA_VERSION, "engines": rows, "drills": drills,
            "summary": {"drills": len(drills), "complete": complete, "changed": sum(d["changed"] for d in drills), "passed": passed},
            "finished_at": clock.now_iso()}


def check_keep(keep: str | None) -> Path | None:
    """--keep DIR as a folder to keep each engine's drill root in: a new or empty real folder, or InputError."""
    if keep is None:
        return None
    path = Path(keep)
    if path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
        raise InputError(f"--keep: {keep}: expected a new or empty folder (not a link) to keep each engine's drill artifacts in")
    return path


def run(engines: str | None = None, names: list[str] | None = None, check: bool = False, progress: Progress | None = None,
        keep: str | None = None, jobs: int = 1) -> Result:
    """The `tc drill matrix` operation: a new observation every time (drills/matrix.json and .html). KEEP: a folder
    that keeps each engine's drill artifacts root (KEEP/<engine>/artifacts); by default they are temporary. JOBS:
    drills at once on each engine (the engines one after the other)."""
    wanted = node_drills(names)  # the drills first: a wrong name is refused wherever no engine is set up
    runner.check_jobs(jobs)
    kept = check_keep(keep)
    chosen = choose(engines)
    target = contracts.artifact("drill_matrix").at(fs.root())
    at_once = f", {min(jobs, len(wanted))} at once" if jobs > 1 else ""
    plan = f"{len(wanted)} node drill(s){at_once} on {len(chosen)} engine(s): " + ", ".join(f"{e.engine} ({e.folder})" for e in chosen)
    if check:
        return Result("changed", f"would run {plan} and write {target}", [str(target)])
    fs.root_for_write()
    rows, results = [], {}
    if kept is not None:
        kept.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.nullcontext(str(kept)) if kept is not None else tempfile.TemporaryDirectory(prefix="tc-drill-matrix-") as scratch:
        for i, env in enumerate(chosen, 1):
            if progress:
                progress(f"engine {i}/{len(chosen)}: nautilus_trader {env.engine} ({env.folder}): {len(wanted)} node drill(s) ...")
            outcome = _run_engine(env, wanted, Path(scratch), progress, jobs)
            rows.append(outcome["row"])
            results[env.engine] = outcome["results"]
    doc = _document(rows, wanted, results)
    record(doc)
    return _result(doc, target)


def record(doc: dict) -> None:
    """Write DOC as the latest matrix (each cell checked against drill_result), one more history line, the page, and
    reseal the drills folder."""
    target = contracts.artifact("drill_matrix").at(fs.root())
    for drill in doc["drills"]:
        for engine, cell in drill["cells"].items():
            contracts.ensure_valid("drill_result", cell, f"{target}: {drill['drill']} on {engine}")
    contracts.ensure_valid("drill_matrix", doc, str(target))
    with fs.locked(runner.drills_dir(), "the drills folder"):
        fs.write_json(target, doc)
        runs.append_history(contracts.artifact("drill_matrix").at(fs.root(), history=True), doc)
        fs.write_atomic(contracts.artifact("drill_matrix_html").at(fs.root()), html.render_matrix(doc).encode("utf-8"))
        runner.seal()


def _result(doc: dict, target: Path) -> Result:
    engines = [row["engine"] for row in doc["engines"]]
    details = []
    for drill in doc["drills"]:
        cells = "  ".join(f"{engine} {drill['cells'][engine]['verdict'] if engine in drill['cells'] else 'no result':<9}" for engine in engines)
        details.append(f"{drill['drill']:<28} {cells} {'CHANGED' if drill['changed'] else ''}".rstrip())
        details.extend(f"    {line}" for line in drill["changes"])
    details.extend(f"engine {row['engine']}: {row['error']}" for row in doc["engines"] if row["error"])
    summary = doc["summary"]
    total = summary["drills"] * len(engines)
    passed = sum(summary["passed"].values())
    broken = any(row["error"] for row in doc["engines"]) or summary["complete"] < summary["drills"]
    code = EXIT_CODES["check"] if passed < total or broken else 0
    text = (f"drill matrix: {passed}/{total} cell(s) detected on {', '.join(engines)}; {summary['changed']} drill(s) changed between "
            f"engines ({target})")
    return Result("changed", text, [str(target), str(contracts.artifact("drill_matrix_html").at(fs.root()))], {"matrix": doc},
                  exit_code=code, details=details)
