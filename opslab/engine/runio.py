"""What the engine commands share around the engine itself: preflight checks and writing results.

No NautilusTrader import here; the engine is imported by backtest.py / paper.py when they run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opslab import artifacts, data, journal, runs
from opslab.errors import InputError
from opslab.result import Result
from opslab.spec import RunSpec

OUTPUTS = {"orders.json": "orders", "fills.json": "fills", "positions.json": "positions", "final_state.json": "state_snapshot"}


def check_kind(spec: RunSpec, kind: str) -> None:
    """InputError when the spec's engine.kind does not match the command."""
    if spec.data["engine"]["kind"] != kind:
        raise InputError(
            f"{spec.path}: /engine/kind: is {spec.data['engine']['kind']!r}, but `tc run {kind}` needs {kind!r}"
        )


def dataset(spec: RunSpec) -> tuple[dict[str, Any], Path]:
    """The run's dataset manifest and bars file, after checking it is present and intact."""
    params = data.DatasetParams.from_spec(spec.data)
    folder = data.dataset_dir(params.dataset_id)
    if not (folder / data.MANIFEST).exists():
        raise data.DatasetError(f"dataset {params.dataset_id}: missing under {data.datasets_dir()}; run `tc data prepare --spec {spec.path}`")
    return data.check_intact(folder), folder / data.BARS_FILE


def bars_to_use(spec: RunSpec, manifest: dict[str, Any]) -> int:
    """Bars the engine processes: the dataset's, bounded by engine.max_bars."""
    return min(manifest["rows"], spec.data["engine"]["max_bars"])


def stale_block(spec: RunSpec, folder: Path, manifest: dict[str, Any]) -> Result | None:
    """When the dataset is older than safety.max_data_age_seconds: record it and return the blocked result."""
    bound = spec.data["safety"].get("max_data_age_seconds")
    if bound is None:
        return None
    age = data.last_bar_age_seconds(manifest)
    if age <= bound:
        return None
    message = (f"dataset {manifest['dataset_id']}: last bar closed {age} s ago ({manifest['last_bar_close']}), "
               f"older than safety.max_data_age_seconds={bound}; refusing to trade on stale data")
    if not journal.has_event(folder / runs.JOURNAL, "data_stale_detected", age_seconds=age):
        journal.append(folder / runs.JOURNAL, spec.run_id, "data_stale_detected",
                       {"age_seconds": age, "max_data_age_seconds": bound, "last_bar_close": manifest["last_bar_close"]})
    runs.patch_metadata(folder, status="blocked")
    runs.finalize(folder, spec.run_id)
    return Result("failed", message, [str(folder)], {"run_id": spec.run_id, "age_seconds": age, "max_data_age_seconds": bound},
                  exit_code=4, details=["runbook: docs/runbooks/stale_data.md"])


def write_outputs(folder: Path, run_id: str, state: dict[str, Any], extra_counters: dict[str, int] | None = None) -> None:
    """orders/fills/positions/final_state files and the counters in metrics.json."""
    for name, schema in OUTPUTS.items():
        key = name[: -len(".json")]
        payload = state[key] if key == "final_state" else {"schema_version": 1, "run_id": run_id, key: state[key]}
        artifacts.write_validated(folder / name, payload, schema, validate=key == "final_state")
    metrics = artifacts.read_json(folder / runs.METRICS)
    metrics["counters"].update(state["counters"])
    metrics["counters"].update(extra_counters or {})
    metrics["balances"] = state["balances"]
    artifacts.write_validated(folder / runs.METRICS, metrics, "metrics")


def engine_summary(state: dict[str, Any], bars_given: int, mode: str) -> dict[str, Any]:
    """The metadata.engine_summary block."""
    return {"mode": mode, "bars_given": bars_given, "counters": state["counters"], "final_balances": state["balances"],
            "open_positions": len(state["final_state"]["positions"]), "open_orders": len(state["final_state"]["open_orders"])}
