"""What an engine run leaves in its run folder: orders, fills, positions, final state, counters.

The engine's state is mapped to the artifact schemas in engine/session.py (read_state); this module
only writes it through the run object.
"""

from __future__ import annotations

from typing import Any

from opslab.contracts import SCHEMA_VERSION
from opslab.runs import Run

LISTINGS = ("orders", "fills", "positions")


def write_outputs(run: Run, state: dict[str, Any], extra_counters: dict[str, int] | None = None) -> None:
    """orders/fills/positions/final_state and the counters and balances in metrics.json."""
    for name in LISTINGS:
        # Built row by row by read_state: validating thousands of rows costs more than the engine run;
        # `tc artifacts verify` and the tests check them.
        run.write(name, {"schema_version": SCHEMA_VERSION, "run_id": run.run_id, name: state[name]}, validate=False)
    run.write("final_state", state["final_state"])
    metrics = run.read("metrics")
    metrics["counters"].update(state["counters"])
    metrics["counters"].update(extra_counters or {})
    metrics["balances"] = state["balances"]
    run.write("metrics", metrics)


def engine_summary(state: dict[str, Any], bars_given: int, mode: str) -> dict[str, Any]:
    """The metadata.engine_summary block."""
    return {"mode": mode, "bars_given": bars_given, "counters": state["counters"], "final_balances": state["balances"],
            "open_positions": len(state["final_state"]["positions"]), "open_orders": len(state["final_state"]["open_orders"])}
