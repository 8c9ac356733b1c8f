"""Runs drills in isolated sandboxes and writes drills/<name>/result.json and drills/scorecard.json."""

from __future__ import annotations

import difflib
import os
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

from opslab import clock, contracts, digests, fs, runs
from opslab.report import html
from opslab.contracts import SCHEMA_VERSION
from opslab.drills.registry import DRILLS
from opslab import drills
from opslab.drills import MAX_JOBS
from opslab.drills.base import Context, Drill, runbook_link
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result

DETECTION_ENV = "TC_DRILL_DETECTION"  # test hook: "off" runs drills with their detection disabled


def drills_dir() -> Path:
    """artifacts/drills."""
    return fs.root() / "drills"


def _path(name: str, *drill: str) -> Path:
    """Where the registered drill artifact NAME lives (for DRILL, where the path has a `*`)."""
    return contracts.artifact(name).at(fs.root(), *drill)


def _record(card: dict | None, results: list[dict]) -> None:
    """Every run of a drill is a new observation: the latest result, one more history line; then the
    scorecard (when given) and the drills manifest over all of it."""
    for result in results:
        contracts.ensure_valid("drill_result", result, str(_path("drill_result", result["drill"])))
        fs.write_json(_path("drill_result", result["drill"]), result)
        runs.append_history(contracts.artifact("drill_result").at(fs.root(), result["drill"], history=True), result)
    if card is not None:
        contracts.ensure_valid("drill_scorecard", card, str(_path("drill_scorecard")))
        fs.write_json(_path("drill_scorecard"), card)
        fs.write_atomic(_path("drill_scorecard_html"), html.render_scorecard(drills_dir()).encode("utf-8"))
    seal()


def seal() -> None:
    """Rewrite drills/manifest.json over every file under drills/ (the caller holds the drills folder's lock)."""
    manifest = _path("drills_manifest")
    files = [rel for rel, kind in fs.walk(drills_dir()) if kind == "file" and rel != manifest.name and not rel.rsplit("/", 1)[-1].startswith(".")]
    digests.write_manifest(manifest, "drills", drills_dir(), sorted(files))


def detection_enabled() -> bool:
    """False only when the test hook TC_DRILL_DETECTION=off is set."""
    return os.environ.get(DETECTION_ENV, "on") != "off"


KINDS = (*drills.KINDS, "all")


def _of_kind(kind: str) -> list[Drill]:
    if kind not in KINDS:
        raise InputError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    return [d for d in DRILLS.values() if kind in ("all", d.kind)]


def list_drills(kind: str = "all") -> Result:
    """The `tc drill list` operation."""
    rows = [{"drill": d.name, "kind": d.kind, "summary": d.summary, "runbook": d.runbook} for d in _of_kind(kind)]
    return Result("ok", f"{len(rows)} drill(s)", data={"drills": rows}, details=[f"{r['drill']:<28} {r['kind']:<5} {r['summary']}" for r in rows])


def _get(name: str) -> Drill:
    if name not in DRILLS:
        close = difflib.get_close_matches(name, list(DRILLS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"drill {name!r}: unknown; known: {', '.join(DRILLS)}{hint}")
    return DRILLS[name]


def _run_one(drill: Drill) -> dict:
    watch = clock.Stopwatch()  # 0 under SOURCE_DATE_EPOCH: a reproducible run's results stay byte-identical
    with tempfile.TemporaryDirectory(prefix=f"tc-drill-{drill.name}-") as sandbox:  # never the user's artifacts
        ctx = Context(drill.name, Path(sandbox), detection_enabled())
        seen = drill.execute(ctx)
    result = {
        "schema_version": SCHEMA_VERSION,
        "drill": drill.name,
        "fault_injected": drill.fault,
        "expected_detection": drill.expected,
        "observed_detection": seen.observed,
        "detected": seen.detected,
        "detection_enabled": ctx.detection,
        "time_to_detect": {"value": seen.time_to_detect if seen.detected else None, "unit": seen.unit},
        "runbook": drill.runbook,
        "verdict": "pass" if seen.detected else "fail",
        "evidence": seen.evidence,
        "finished_at": clock.now_iso(),
        "seconds": round(watch.elapsed_ms() / 1000, 1),
        "kind": drill.kind,
    }
    if drill.kind == "node":
        result.update(alert=seen.alert, findings=seen.findings, engine_version=f"nautilus_trader {runs.versions()['nautilus_trader']}")
    return result


def run(name: str, check: bool = False, progress: Callable[[int, int, str], None] | None = None) -> Result:
    """The `tc drill run NAME` operation: records a new result; exit 0 when detected, 4 when not.
    PROGRESS(1, 1, name) is called when the drill starts."""
    drill = _get(name)
    if drill.missing():
        raise InputError(f"drill {name}: cannot run on this machine: {drill.missing()}")
    if check:
        return Result("changed", f"would run drill {name} in a sandbox and record its result", [str(_path("drill_result", name))])
    fs.root_for_write()
    with fs.locked(drills_dir(), "the drills folder"):
        if progress:
            progress(1, 1, name)
        result = _run_one(drill)
        _record(None, [result])
    code = 0 if result["verdict"] == "pass" else EXIT_CODES["check"]
    summary = f"drill {name}: {result['verdict']} ({'detected' if result['detected'] else 'NOT detected'}: {result['observed_detection']})"
    return Result("changed", summary, [str(_path("drill_result", name))], {"result": result}, exit_code=code,
                  details=[f"runbook: {runbook_link(result['runbook'])}"])


def _scorecard(latest: list[dict]) -> dict:
    """The scorecard over LATEST: the newest result of every registered drill that has one."""
    rows = []
    for r in latest:
        row = {"drill": r["drill"], "kind": r.get("kind", "lab"), "verdict": r["verdict"], "detected": r["detected"], "runbook": r["runbook"],
               "time_to_detect": r["time_to_detect"]}
        if r.get("findings"):
            row["findings"] = r["findings"]
        rows.append(row)
    passed = sum(r["verdict"] == "pass" for r in rows)
    return {"schema_version": SCHEMA_VERSION, "total": len(rows), "passed": passed, "failed": len(rows) - passed, "drills": rows,
            "finished_at": clock.now_iso()}


def stored_result(path: Path) -> dict | None:
    """The drill result at PATH, or None when there is none or it does not validate
    (`tc artifacts verify` names such a file; the scorecard leaves it out)."""
    if not fs.exists(path):
        return None
    try:
        doc = fs.read_json(path)
    except InputError:
        return None
    return None if contracts.errors_for("drill_result", doc, str(path)) else doc


def check_jobs(jobs: int) -> int:
    """JOBS, the number of drills to run at once, or one clear error."""
    if not 1 <= jobs <= MAX_JOBS:
        raise InputError(f"--jobs {jobs}: expected 1 to {MAX_JOBS} drills at once")
    return jobs


def _run_each(chosen: list[Drill], jobs: int, progress: Callable[[int, int, str], None] | None,
              finished: Callable[[int, int, dict], None] | None) -> dict[str, dict]:
    """Run CHOSEN, JOBS at a time (each drill in its own sandbox, with its own processes and ports, so they
    cannot see each other); the results by drill name. The callbacks are called one at a time."""
    results: dict[str, dict] = {}
    said = threading.Lock()
    total = len(chosen)

    def one(i: int, drill: Drill) -> dict:
        if progress:
            with said:
                progress(i, total, drill.name)
        return _run_one(drill)

    if jobs == 1:
        for i, drill in enumerate(chosen, 1):
            results[drill.name] = one(i, drill)
            if finished:
                finished(i, total, results[drill.name])
        return results
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="drill") as pool:
        pending: set[Future] = {pool.submit(one, i, drill) for i, drill in enumerate(chosen, 1)}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()  # a drill that raised stops the suite: the drills not yet started never start
                    results[result["drill"]] = result
                    if finished:
                        with said:
                            finished(len(results), total, result)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return {drill.name: results[drill.name] for drill in chosen}


def run_all(check: bool = False, kind: str = "lab", progress: Callable[[int, int, str], None] | None = None,
            finished: Callable[[int, int, dict], None] | None = None, jobs: int = 1, names: list[str] | None = None) -> Result:
    """The `tc drill run --all [--kind K] [--jobs N]` and `tc drill run NAME NAME...` operation: every drill of KIND
    (or the drills NAMES, in registry order), JOBS at once, then drills/scorecard.json over the latest result of every
    drill (a node-drill run keeps the lab drills' rows, and the other way round). PROGRESS(i, n, name) is called
    before each drill starts, FINISHED(k, n, result) after the k-th one ended."""
    if names:
        wanted = {_get(name).name for name in names}
        chosen, kind = [d for d in DRILLS.values() if d.name in wanted], "chosen"
    else:
        chosen = _of_kind(kind)
    skipped = [(d.name, d.missing()) for d in chosen if d.missing()]  # e.g. no redis-server: said, not run, not failed
    chosen = [d for d in chosen if not d.missing()]
    check_jobs(jobs)
    if check:
        at_once = f", {min(jobs, len(chosen))} at once" if jobs > 1 else ""
        return Result("changed", f"would run {len(chosen)} {kind} drill(s){at_once} and record their results and the scorecard",
                      [str(_path("drill_scorecard"))], details=[f"{name:<28} skipped: {reason}" for name, reason in skipped])
    fs.root_for_write()
    started = time.monotonic()
    with fs.locked(drills_dir(), "the drills folder"):
        results = _run_each(chosen, jobs, progress, finished)
        latest = [doc for doc in (results.get(name) or stored_result(_path("drill_result", name)) for name in DRILLS) if doc]
        card = _scorecard(latest)
        _record(card, list(results.values()))
    path = _path("drill_scorecard")
    mine = [r for r in card["drills"] if r["drill"] in results]
    details = [f"{r['drill']:<28} {r['kind']:<5} {r['verdict']:<5} {'detected' if r['detected'] else 'NOT detected':<13} "
               f"{results[r['drill']]['seconds']:>6.1f} s  {runbook_link(r['runbook'])}" for r in mine]
    details += [f"{name:<28} skipped: {reason}" for name, reason in skipped]
    passed = sum(r["verdict"] == "pass" for r in mine)
    code = 0 if passed == len(mine) else EXIT_CODES["check"]
    took = round(time.monotonic() - started, 1)
    also = f"; {len(skipped)} skipped (see details)" if skipped else ""
    return Result("changed", f"{kind} drills: {passed}/{len(mine)} detected their failure in {took:.1f} s{also}; "
                  f"scorecard {card['passed']}/{card['total']} ({path})",
                  [str(path)], {"scorecard": card, "results": list(results.values()), "seconds": took, "jobs": jobs,
                                "skipped": [{"drill": name, "reason": reason} for name, reason in skipped]}, exit_code=code, details=details)
