"""node_futures_restart_with_position: the node is SIGKILLed holding a USD-M position and a resting order, then restarts (same
run, same spec, no cache database: nautilus_trader#4736). Its startup reconciliation rebuilds both from the venue's reports, but
it no longer knows which strategy placed them. Detected: those orders in the node's cache that none of its strategies placed
(tc_node_external_orders), TcNodeExternalOrders delivered, or, when the rebuilt position is not the venue's,
TcReconciliationMismatch. Recorded: what came back and as whose, and `tc reconcile`."""

from __future__ import annotations

import signal
import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node import futures_kit as fk
from opslab.drills.node.kit import NodeLab, observation

DETECT_TIMEOUT_S = 25.0


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-futures-restart", speed=300, futures_step_bars=fk.HOLD_STEP_BARS, duration_seconds=60) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("a long and a resting order at the venue", lambda: lab.futures_amount() > 0 and any(
            o["status"] == "NEW" for o in lab.futures_state()["orders"]), timeout=30)
        held = lab.futures_amount()
        resting = [o["clientOrderId"] for o in lab.futures_state()["orders"] if o["status"] == "NEW"]
        lab.node.send_signal(signal.SIGKILL)  # the injected fault: the node dies holding both
        lab.node.wait()
        seq = lab.stack.last_seq()
        lab.start_node()  # same run, same spec: the restart
        since = time.monotonic()
        lab.wait_running()
        running_in = round(time.monotonic() - since, 3)
        seen = fk.settle(lab, fk.POSITION_ALERTS, since, seq, DETECT_TIMEOUT_S)
    alert, foreign = seen.alert, seen.foreign
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the node restarted holding a position and a resting order"
                if detected else f"no notification within {DETECT_TIMEOUT_S:g} s of the node's restart")
    findings = [
        f"killed holding a long of {held:f} and the resting order(s) {', '.join(resting)}, the node was running {running_in} s after its "
        f"restart (startup reconciliation included); it {fk.describe_foreign(foreign)}",
        "its strategy started afresh and traded its first bar again (no cache database: it does not know it holds anything)",
        f"the node's position at its stop {fk.describe_position(seen.node_position)}; the venue's {fk.describe_position(seen.venue_position)}",
        fk.describe_reconcile(seen.reconcile_code, seen.mismatches),
    ]
    evidence = {"held_at_kill": f"{held:f}", "resting_at_kill": resting, "seconds_to_running_after_restart": running_in,
                "external_orders": seen.beat.get("external_orders"), "foreign_orders": foreign, "node_position": seen.node_position,
                "venue_position": seen.venue_position, "reconcile_exit_code": seen.reconcile_code, "mismatches": seen.mismatches}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_futures_restart_with_position",
              "a node killed holding a USD-M position and a resting order restarts; the orders it lost the owner of are alerted",
              "SIGKILL to the node holding a long in BTCUSDT-PERP and a resting limit buy; the node restarts on the same run and spec",
              "TcNodeExternalOrders (orders the restarted node holds but none of its strategies placed) or TcReconciliationMismatch "
              "delivered; what startup reconciliation rebuilt, and as whose, is recorded", execute, kind="node")
