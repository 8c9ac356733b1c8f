"""Connectivity readiness: are the spec's credential placeholders set? Presence only, no network.

A placeholder is an environment-variable NAME. Its value is looked at only to tell set from empty:
it is never copied, logged or written anywhere.
"""

from __future__ import annotations

import os

from opslab import clock, runs
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.spec import RunSpec



def _state(name: str) -> str:
    if name not in os.environ:
        return "unset"
    return "set" if os.environ[name] != "" else "empty"


def evaluate(spec: RunSpec, check: bool = False) -> Result:
    """The `tc connectivity readiness` operation: records a new observation; exit 0 ready, 4 not ready."""
    block = spec.data.get("connectivity_readiness")
    if not block:
        raise InputError(f"{spec.path}: /connectivity_readiness: not set; add the block (venue, placeholders) to evaluate readiness")
    placeholders = [{"role": p["role"], "env": p["env"], "state": _state(p["env"])} for p in block["placeholders"]]
    missing = [p["env"] for p in placeholders if p["state"] != "set"]
    ready = not missing
    summary = f"run {spec.run_id}: " + ("ready to connect: every credential placeholder is set" if ready
                                          else f"NOT ready: {len(missing)} of {len(placeholders)} placeholder(s) unset or empty")
    details = [f"{p['role']}: {p['env']} is {p['state']}" for p in placeholders if p["state"] != "set"]
    code = 0 if ready else EXIT_CODES["check"]
    if check:
        return Result("changed", f"would record: {summary}", [str(runs.path_of(runs.run_dir(spec.run_id), "connectivity_readiness"))],
                      exit_code=code, details=details)
    doc = {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "venue": block["venue"], "ready": ready,
           "placeholders": placeholders, "missing": missing, "evaluated_at": clock.now_iso()}
    with runs.open(spec) as run:
        run.observe("connectivity_readiness", doc, "connectivity_readiness_evaluated", {"ready": ready, "missing": missing},
                    {"ready": ready, "placeholders": len(placeholders), "missing": len(missing), "evaluated_at": doc["evaluated_at"]})
    return Result("changed", summary, [str(run.path("connectivity_readiness"))], {"readiness": doc}, exit_code=code, details=details)
