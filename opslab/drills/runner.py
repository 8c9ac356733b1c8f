"""Runs drills in isolated sandboxes and writes drills/<name>/result.json and drills/scorecard.json."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from opslab import artifacts, clock, report_html
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


def _run_one(drill: Drill) -> tuple[dict, bool]:
    folder = drills_dir() / drill.name
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
    }
    path = folder / "result.json"
    changed = not artifacts.same_except_volatile(path, result, "drill_result")
    if changed:
        artifacts.write_validated(path, result, "drill_result")
    return result, changed


def run(name: str) -> Result:
    """The `tc drill run NAME` operation: exit 0 when detected, 4 when not."""
    artifacts.ensure_writable_root()
    result, changed = _run_one(_get(name))
    path = drills_dir() / name / "result.json"
    code = 0 if result["verdict"] == "pass" else CheckFailed.exit_code
    summary = f"drill {name}: {result['verdict']} ({'detected' if result['detected'] else 'NOT detected'}: {result['observed_detection']})"
    return Result("changed" if changed else "ok", summary, [str(path)], {"result": result}, exit_code=code,
                  details=[f"runbook: docs/{result['runbook']}"])


def run_all() -> Result:
    """The `tc drill run --all` operation: every drill plus drills/scorecard.json."""
    artifacts.ensure_writable_root()
    rows, results, changes = [], [], []
    for drill in DRILLS.values():
        result, changed = _run_one(drill)
        results.append(result)
        changes.append(changed)
        rows.append({"drill": drill.name, "verdict": result["verdict"], "detected": result["detected"], "runbook": result["runbook"],
                     "time_to_detect": result["time_to_detect"]})
    passed = sum(r["verdict"] == "pass" for r in rows)
    card = {"schema_version": SCHEMA_VERSION, "total": len(rows), "passed": passed, "failed": len(rows) - passed,
            "drills": rows, "finished_at": clock.now_iso()}
    path = drills_dir() / "scorecard.json"
    if not artifacts.same_except_volatile(path, card, "drill_scorecard"):
        artifacts.write_validated(path, card, "drill_scorecard")
        changes.append(True)
    changes.append(artifacts.write_bytes_atomic(drills_dir() / report_html.SCORECARD_HTML, report_html.render_scorecard(drills_dir()).encode("utf-8")))
    details = [f"{r['drill']:<22} {r['verdict']:<5} {'detected' if r['detected'] else 'NOT detected':<13} docs/{r['runbook']}" for r in rows]
    code = 0 if passed == len(rows) else CheckFailed.exit_code
    return Result("changed" if any(changes) else "ok", f"scorecard: {passed}/{len(rows)} drills detected their failure ({path})", [str(path)], {"scorecard": card, "results": results}, exit_code=code, details=details)
