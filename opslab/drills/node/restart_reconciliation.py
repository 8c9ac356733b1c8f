"""node_restart_reconciliation: the node is SIGKILLed holding an open order and a position; while it
is down the venue fills that order; the node restarts and NautilusTrader's LiveExecutionEngine
reconciles at startup (nautilus_trader#3046, #4736, #3104). The lab's reconciliation of node vs venue
decides; a mismatch must be detected and alerted (TcReconciliationMismatch delivered)."""

from __future__ import annotations

import signal
import time
from collections import Counter

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcReconciliationMismatch",)
KILL_ATTEMPTS = 3  # kills until one lands while an order rests at the venue


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-restart", speed=300) as lab:  # 5 bars/s: the kill lands between the first buy and its sell
        lab.start_node()
        lab.wait_running()
        for attempt in range(1, KILL_ATTEMPTS + 1):
            lab.wait_node("a fill and a resting order at the venue", lambda: lab.venue_state()["trades"] and lab.venue_open_orders(), timeout=20)
            lab.node.send_signal(signal.SIGKILL)  # the injected fault, part 1: the node dies holding both
            lab.node.wait()
            resting = [o["clientOrderId"] for o in lab.venue_open_orders()]
            if resting or attempt == KILL_ATTEMPTS:
                break
            # the order filled or was cancelled between the look and the kill (a bar is 0.2 s): nothing to fill while it
            # is down, so no incident yet; start it again and kill it on its next resting order
            lab.start_node()
            lab.wait_running()
        filled_ids = lab.fill_resting()  # part 2: while it is down, the venue fills the resting order
        filled = [o["clientOrderId"] for o in lab.venue_state()["orders"] if o["orderId"] in filled_ids]
        venue_trades_down = len(lab.venue_state()["trades"])
        lab.start_node()  # same run, same spec: the restart
        t0 = time.monotonic()
        lab.wait_running()
        reconciled_in = round(time.monotonic() - t0, 3)
        time.sleep(2.0)
        lab.stop_node()
        seq = lab.stack.last_seq()
        t1 = time.monotonic()
        recon = ctx.tc("reconcile", "--spec", str(lab.spec_path))
        alert = lab.detect(ALERTS, t1, timeout=20, after_seq=seq) if recon.code == 4 else None
        fills = lab.output("fills").get("fills", [])
        orders = lab.output("orders").get("orders", [])
        positions = lab.output("positions").get("positions", [])
        report = lab.output("reconciliation")
    dupes = sorted(t for t, n in Counter(f["trade_id"] for f in fills).items() if n > 1)
    seen_filled = [o for o in orders if o["client_order_id"] in filled]
    mismatches = [{k: c.get(k) for k in ("kind", "field", "expected", "observed")} for c in report.get("checks", []) if c.get("status") == "mismatch"]
    converged = recon.code == 0 and not dupes
    injected = bool(filled)
    detected = injected and (converged or (recon.code == 4 and alert is not None))
    if not injected:
        observed = f"no order rested at the venue at any of {attempt} kill(s): the fault was not injected"
    elif converged:
        observed = "the restarted node reconciled to the venue's truth: `tc reconcile` found no mismatch and no duplicate trade ids"
    elif alert is not None:
        observed = f"`tc reconcile` exited 4 ({len(mismatches)} mismatch(es)); {alert['alertname']} delivered {alert['seconds']:.1f} s later"
    else:
        observed = f"`tc reconcile` exited {recon.code}; no reconciliation notification delivered"
    findings = [f"the restarted node was running {reconciled_in} s after its start (startup reconciliation included); the order filled while it "
                f"was down ({', '.join(filled) or 'none'}) is in its books as "
                f"{', '.join(sorted({o.get('status', '?') for o in seen_filled})) or 'absent'}",
                f"after the restart its positions are {sorted((p['position_id'], 'open' if p.get('is_open') else 'closed') for p in positions)}; "
                f"duplicate trade ids in its fills: {dupes or 'none'}",
                ("node vs venue: " + "; ".join(f"{m['kind']} {m['field']} venue {m['expected']} node {m['observed']}" for m in mismatches))
                if mismatches else "node vs venue: no mismatch"]
    evidence = {"kills": attempt, "resting_orders_at_kill": resting, "filled_while_down": filled, "venue_trades": venue_trades_down,
                "seconds_to_running_after_restart": reconciled_in, "reconcile_exit_code": recon.code, "mismatches": mismatches,
                "duplicate_trade_ids": dupes, "node_fills": len(fills)}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_restart_reconciliation", "a node killed holding an order and a position restarts after the venue filled the order",
              "SIGKILL to the node holding an open order and a position; the venue fills the order while it is down; the node restarts",
              "`tc reconcile` (node vs venue) passes, or its mismatch is delivered as TcReconciliationMismatch", execute, kind="node")
