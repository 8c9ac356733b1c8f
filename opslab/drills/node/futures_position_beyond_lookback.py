"""node_futures_position_beyond_lookback: the account holds a USD-M position opened two days ago, before the node's
reconciliation lookback (LiveExecEngineConfig.reconciliation_lookback_mins, 1,440 here), when the node starts
(nautilus_trader#3104). Its startup reconciliation gets the position from positionRisk but no fill or order behind it.
Detected: the order NautilusTrader makes up to account for the position (tc_node_external_orders), TcNodeExternalOrders
delivered, or, when the node's position is not the venue's, TcReconciliationMismatch. Recorded: what NautilusTrader made up
(strategy id, tags, the price of its inferred fill against the venue's entry price) and `tc reconcile`."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node import futures_kit as fk
from opslab.drills.node.kit import NodeLab, observation

DETECT_TIMEOUT_S = 25.0
OPENED_HOURS_AGO = 48  # beyond the node's 24 h lookback
OLD_QTY = "0.030"


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-futures-lookback", speed=300, futures_step_bars=fk.HOLD_STEP_BARS, replay_now=True, duration_seconds=60) as lab:
        lab.wait_node("the perpetual's mark price", lambda: lab.futures_state()["position"]["markPrice"] != "0.00000000", timeout=20)
        opened = lab.other_client("POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=OLD_QTY,
                                  newClientOrderId="opened-long-ago-1")
        moved = lab.age_futures(OPENED_HOURS_AGO)  # the injected fault: that position, its order and its trade are two days old
        old_entry = lab.futures_state()["position"]["entryPrice"]
        seq = lab.stack.last_seq()
        since = time.monotonic()
        lab.start_node()
        lab.wait_running()
        seen = fk.settle(lab, fk.POSITION_ALERTS, since, seq, DETECT_TIMEOUT_S)
        looked_back = lab.log_lines(r"reconciliation_lookback_mins", limit=1)
    alert, foreign = seen.alert, seen.foreign
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the node started with a position older than its lookback"
                if detected else f"no notification within {DETECT_TIMEOUT_S:g} s of the node starting with a position older than its lookback")
    made_up = [o for o in foreign if o["status"] == "FILLED"]
    findings = [
        f"the account held a long of {OLD_QTY} opened {OPENED_HOURS_AGO} h before the node started (venue entry {old_entry}); "
        f"its startup reconciliation (lookback 1,440 min) {fk.describe_foreign(foreign)}",
        (f"the made-up fill's price {made_up[0]['avg_px']} against the venue's entry {old_entry}" if made_up and made_up[0]["avg_px"]
         else "no made-up fill"),
        f"the node's position at its stop {fk.describe_position(seen.node_position)}; the venue's {fk.describe_position(seen.venue_position)}",
        fk.describe_reconcile(seen.reconcile_code, seen.mismatches),
    ]
    evidence = {"opened_hours_ago": OPENED_HOURS_AGO, "old_quantity": OLD_QTY, "old_entry_price": old_entry, "records_moved": moved,
                "old_order": {k: opened.get(k) for k in ("orderId", "clientOrderId")},
                "external_orders": seen.beat.get("external_orders"), "foreign_orders": foreign, "node_position": seen.node_position,
                "venue_position": seen.venue_position, "reconcile_exit_code": seen.reconcile_code, "mismatches": seen.mismatches,
                "nautilus_log": looked_back}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_futures_position_beyond_lookback",
              "the node starts holding a USD-M position opened before its reconciliation lookback; the made-up order is alerted",
              f"another client opened a long of {OLD_QTY} BTCUSDT-PERP {OPENED_HOURS_AGO} h ago (the venue's records moved back), "
              "beyond the node's 1,440-minute reconciliation lookback; then the node starts",
              "TcNodeExternalOrders (the order NautilusTrader made up for the position) or TcReconciliationMismatch delivered; what it "
              "made up and whether node and venue agree is recorded", execute, kind="node")
