"""stale_data: a dataset whose last bar is older than the spec's staleness bound must stop the run before it trades."""

from __future__ import annotations

import json

from opslab import contracts
from opslab.drills.base import Context, Drill, Observation, base_spec


def execute(ctx: Context) -> Observation:
    spec = base_spec("stale-data-drill")
    spec["dataset"]["start"] = "2001-01-01T00:00:00Z"  # stale against any plausible clock, SOURCE_DATE_EPOCH included
    spec["safety"] = {"max_data_age_seconds": 3600 if ctx.detection else None}
    path = ctx.spec("stale-data", spec)
    ctx.tc("data", "prepare", "--spec", str(path))
    result = ctx.tc("run", "backtest", "--spec", str(path))
    folder = ctx.sandbox / "artifacts" / "runs" / "stale-data-drill"
    traded = (folder / contracts.artifact("orders").path).exists()
    events = [json.loads(line)["event"] for line in (folder / contracts.artifact("journal").path).read_text().splitlines()] if folder.exists() else []
    detected = result.code == 4 and not traded and "data_stale_detected" in events
    observed = (f"tc run backtest exited {result.code} before any order; journal data_stale_detected" if detected
                else f"tc run backtest exited {result.code}; orders written: {traded}")
    return Observation(detected, observed, 0 if detected else None, "bars",
                       {"exit_code": result.code, "orders_written": traded, "stale_event": "data_stale_detected" in events,
                        "max_data_age_seconds": spec["safety"]["max_data_age_seconds"]})


DRILL = Drill("stale_data", "a dataset older than the staleness bound is refused before trading",
              "the dataset's last bar closed long before now (a 2001 synthetic series against a 1 h bound)",
              "tc run backtest exits 4 with data_stale_detected and submits no order", execute)
