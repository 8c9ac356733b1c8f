"""Runs drills in isolated sandboxes and writes drills/<name>/result.json and drills/scorecard.json."""

from __future__ import annotations

import os
from pathlib import Path

from opslab import artifacts, clock
from opslab.contracts import SCHEMA_VERSION
from opslab.drills import DRILLS
from opslab.drills.base import Context, Drill
from opslab.errors import CheckFailed, InputError
from opslab.result import Result

DETECTION_ENV = "TC_DRILL_DETECTION"  # test hook: "off" runs drills with their detection disabled


def drills_dir() -> Path:
    """artifacts/drills."""
    return artifacts.root() / "drills"


def detection_enabled() -> bool:
    """False only when the test hook TC_DRILL_DETECTION=off is set."""
    return os.environ.get(DETECTION_ENV, "on") != "off"


def list_drills() -> Result:
    """The `tc drill list` operation."""
    rows = [{"drill": d.name, "summary": d.summary, "runbook": d.runbook} for d in DRILLS.values()]
    return Result("ok", f"{len(rows)} drill(s)", data={"drills": rows}, details=[f"{r['drill']:<22} {r['summary']}" for r in rows])


def _get(name: str) -> Drill:
    if name not in DRILLS:
        raise InputError(f"drill {name!r}: unknown; known: {', '.join(DRILLS)}")
    return DRILLS[name]


def _run_one(drill: Drill) -> dict:
    folder = drills_dir() / drill.name
    ctx = Context(drill.name, folder / "sandbox", detection_enabled())
    ctx.reset()
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
    }
    artifacts.write_validated(folder / "result.json", result, "drill_result")
    return result


def run(name: str) -> Result:
    """The `tc drill run NAME` operation: exit 0 when detected, 4 when not."""
    artifacts.ensure_writable_root()
    result = _run_one(_get(name))
    path = drills_dir() / name / "result.json"
    code = 0 if result["verdict"] == "pass" else CheckFailed.exit_code
    summary = f"drill {name}: {result['verdict']} ({'detected' if result['detected'] else 'NOT detected'}: {result['observed_detection']})"
    return Result("changed", summary, [str(path)], {"result": result}, exit_code=code, details=[f"runbook: docs/{result['runbook']}"])


def run_all() -> Result:
    """The `tc drill run --all` operation: every drill plus drills/scorecard.json."""
    artifacts.ensure_writable_root()
    rows, results = [], []
    for drill in DRILLS.values():
        result = _run_one(drill)
        results.append(result)
        rows.append({"drill": drill.name, "verdict": result["verdict"], "detected": result["detected"], "runbook": result["runbook"]})
    passed = sum(r["verdict"] == "pass" for r in rows)
    card = {"schema_version": SCHEMA_VERSION, "total": len(rows), "passed": passed, "failed": len(rows) - passed,
            "drills": rows, "finished_at": clock.now_iso()}
    path = drills_dir() / "scorecard.json"
    artifacts.write_validated(path, card, "drill_scorecard")
    details = [f"{r['drill']:<22} {r['verdict']:<5} {'detected' if r['detected'] else 'NOT detected':<13} docs/{r['runbook']}" for r in rows]
    code = 0 if passed == len(rows) else CheckFailed.exit_code
    return Result("changed", f"scorecard: {passed}/{len(rows)} drills detected their failure ({path})", [str(path)], {"scorecard": card, "results": results}, exit_code=code, details=details)
