"""Connectivity readiness: are the spec's credential placeholders set? Presence only, no network.

A placeholder is an environment-variable NAME. Its value is looked at only to tell set from empty:
it is never copied, logged or written anywhere.
"""

from __future__ import annotations

import os

from opslab import artifacts, journal, runs
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import CheckFailed, InputError
from opslab.result import Result
from opslab.spec import RunSpec

ARTIFACT = "connectivity_readiness.json"


def _state(name: str) -> str:
    if name not in os.environ:
        return "unset"
    return "set" if os.environ[name] != "" else "empty"


def evaluate(spec: RunSpec) -> Result:
    """The `tc connectivity readiness` operation: exit 0 ready, 4 not ready."""
    block = spec.data.get("connectivity_readiness")
    if not block:
        raise InputError(f"{spec.path}: /connectivity_readiness: not set; add the block (venue, placeholders) to evaluate readiness")
    placeholders = [{"role": p["role"], "env": p["env"], "state": _state(p["env"])} for p in block["placeholders"]]
    missing = [p["env"] for p in placeholders if p["state"] != "set"]
    ready = not missing
    doc = {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "venue": block["venue"], "ready": ready,
           "placeholders": placeholders, "missing": missing}
    runs.init(spec)
    folder = artifacts.run_dir(spec.run_id)
    with artifacts.locked(folder, f"run {spec.run_id}"):
        changed = artifacts.write_validated(folder / ARTIFACT, doc, "connectivity_readiness")
        if changed:
            journal.append(folder / runs.JOURNAL, spec.run_id, "connectivity_readiness_evaluated", {"ready": ready, "missing": missing})
            runs.patch_metadata(folder, connectivity_readiness={"ready": ready, "placeholders": len(placeholders), "missing": len(missing)})
        runs.finalize(folder, spec.run_id)
    summary = f"run {spec.run_id}: " + ("ready to connect: every credential placeholder is set" if ready
                                          else f"NOT ready: {len(missing)} of {len(placeholders)} placeholder(s) unset or empty")
    details = [f"{p['role']}: {p['env']} is {p['state']}" for p in placeholders if p["state"] != "set"]
    return Result("changed" if changed else "ok", summary, [str(folder / ARTIFACT)], {"readiness": doc},
                  exit_code=0 if ready else CheckFailed.exit_code, details=details)
