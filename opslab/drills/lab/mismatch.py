"""mismatch: observed state differs from expected; reconciliation must exit 4 naming the check."""

from __future__ import annotations

import json

from opslab import market
from opslab.contracts import SCHEMA_VERSION
from opslab.drills.base import Context, Drill, Observation, base_spec

EXPECTED = {"schema_version": SCHEMA_VERSION, "source": "expected", "positions": [{"instrument": market.INSTRUMENT_ID, "side": "LONG", "quantity": "0.25"}],
            "open_orders": [], "balances": {"USDT": "1000.00", "BTC": "0.25"}}


def execute(ctx: Context) -> Observation:
    observed = json.loads(json.dumps(EXPECTED))
    observed["source"] = "observed"
    observed["positions"][0]["quantity"] = "0.26"  # the injected fault: one position quantity is off
    exp, obs = ctx.sandbox / "expected.json", ctx.sandbox / "observed.json"
    exp.write_text(json.dumps(EXPECTED))
    obs.write_text(json.dumps(observed))
    spec = base_spec("mismatch-drill", bars=60)
    spec["reconciliation"] = {"tolerances": {"quantity": "0" if ctx.detection else "1000000", "balance": "0.01"}}
    path = ctx.spec("mismatch", spec)
    result = ctx.tc("reconcile", "--spec", str(path), "--expected", str(exp), "--observed", str(obs))
    details = result.json().get("details", []) if result.out else []
    check = f"position {market.INSTRUMENT_ID} quantity"
    detected = result.code == 4 and any(d.startswith(check) for d in details)
    observed_text = f"tc reconcile exited {result.code}" + (f": {details[0]}" if details else "")
    return Observation(detected, observed_text, 1 if detected else None, "checks",
                       {"exit_code": result.code, "failing_checks": details})


DRILL = Drill("mismatch", "observed state differs from expected: reconciliation exits 4 with the failing check",
              "the observed position quantity is 0.26 where 0.25 is expected",
              f"tc reconcile exits 4 and names 'position {market.INSTRUMENT_ID} quantity'", execute)
