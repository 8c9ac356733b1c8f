"""node_futures_flip: the node's strategy takes its USD-M position from long to short in one order (a sell of twice the long;
the nautilus_trader#4521 series). NautilusTrader closes the position and opens the short with the rest of the fill. Detected:
the fill that crossed zero (tc_node_position_flips, counted by the ops actor), TcNodePositionFlipped delivered. Recorded: what
NautilusTrader's positions report shows of the flip, the entry price it gave the short against the venue's, and `tc reconcile`."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node import futures_kit as fk
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodePositionFlipped",)
STEP_BARS = 3  # the cycle's flip (its fourth order) comes on bar 9, 2 s into the node's bars at speed 300, then every 15 bars
DETECT_TIMEOUT_S = 25.0


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-futures-flip", speed=300, futures_step_bars=STEP_BARS, duration_seconds=60) as lab:
        seq = lab.stack.last_seq()
        lab.start_node()
        lab.wait_running()
        since = time.monotonic()
        lab.wait_node("the flip", lambda: (lab.heartbeat() or {}).get("position_flips", 0) >= 1, timeout=30)
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        lab.stop_node()
        code, mismatches, _ = fk.reconcile(lab, None)
        beat = lab.heartbeat() or {}
        fills = sorted(lab.output("fills").get("fills", []), key=lambda f: int(f["trade_id"]))
        reported = lab.output("positions").get("positions", [])
        node_pos, venue_pos = fk.positions(lab)
    detected = alert is not None
    flip = next((f for f in fills if f["side"] == "SELL" and f["quantity"] == "0.02"), None)  # the first cycle's
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the node started trading" if detected
                else f"no position-flip notification within {DETECT_TIMEOUT_S:g} s")
    findings = [
        f"the strategy sold 0.02 against a long of 0.01 in one order (filled at {flip['price'] if flip else '?'}); the ops actor counted "
        f"{beat.get('position_flips')} flip(s)",
        f"NautilusTrader's positions report holds {len(reported)} position(s) under the id(s) "
        f"{', '.join(sorted({p['position_id'] for p in reported}))}: " + "; ".join(
            f"{p['side']} {p['quantity']} opened at {p['avg_px_open']}" + (" (open)" if p["is_open"] else "") for p in reported[:4]),
        f"the node's position at its stop {fk.describe_position(node_pos)}; the venue's {fk.describe_position(venue_pos)}",
        fk.describe_reconcile(code, mismatches),
    ]
    evidence = {"position_flips": beat.get("position_flips"), "flip_fill": flip, "positions_report": reported[:6],
                "node_position": node_pos, "venue_position": venue_pos, "reconcile_exit_code": code, "mismatches": mismatches}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_futures_flip", "the node's strategy flips its USD-M position from long to short in one order; the flip is alerted",
              "the futures smoke strategy opens a long of 0.01, adds, reduces, then sells 0.02: long 0.01 to short 0.01 in one order",
              "TcNodePositionFlipped delivered (a fill that took the node's net position through zero); how NautilusTrader recorded the "
              "flip and whether node and venue agree on side, quantity and entry price (tc reconcile) is recorded", execute, kind="node")
