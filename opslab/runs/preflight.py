"""Checks an engine command makes before it runs anything: the engine kind, the bars to use, stale data.

No NautilusTrader import here; the engine is imported by backtest.py / paper.py when they run it.
"""

from __future__ import annotations

from typing import Any

from opslab.datasets import store
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.runs import Run
from opslab.spec import RunSpec

STALE_RUNBOOK = "runbook: docs/runbooks/stale_data.md"


def check_kind(spec: RunSpec, kind: str) -> None:
    """InputError when the spec's engine.kind does not match the command."""
    if spec.data["engine"]["kind"] != kind:
        raise InputError(f"{spec.path}: /engine/kind: is {spec.data['engine']['kind']!r}, but `tc run {kind}` needs {kind!r}")


def bars_to_use(spec: RunSpec, manifest: dict[str, Any]) -> int:
    """Bars the engine processes: the dataset's, bounded by engine.max_bars."""
    return min(manifest["rows"], spec.data["engine"]["max_bars"])


def stale_block(run: Run) -> Result | None:
    """When the dataset is older than safety.max_data_age_seconds: record it, return the blocked result."""
    bound = run.spec.data["safety"].get("max_data_age_seconds")
    if bound is None:
        return None
    manifest = run.dataset
    age = store.last_bar_age_seconds(manifest)
    if age <= bound:
        return None
    message = (f"dataset {manifest['dataset_id']}: last bar closed {age} s ago ({manifest['last_bar_close']}), "
               f"older than safety.max_data_age_seconds={bound}; refusing to trade on stale data")
    if not run.has_event("data_stale_detected", age_seconds=age):
        run.event("data_stale_detected", {"age_seconds": age, "max_data_age_seconds": bound, "last_bar_close": manifest["last_bar_close"]})
    run.meta(status="blocked")
    return Result("failed", message, [str(run.folder)], {"run_id": run.run_id, "age_seconds": age, "max_data_age_seconds": bound},
                  exit_code=EXIT_CODES["check"], details=[STALE_RUNBOOK])
