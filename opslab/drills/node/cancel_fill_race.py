"""node_cancel_fill_race: the venue fills the node's resting order at the moment the node cancels it (fault cancel_fill_race, the
cancel chosen by its seed, switched on over the admin API once the node trades). The kill switch makes the node cancel: its
ops actor's cancel_all_orders (1.221: DELETE /api/v3/openOrders; 1.231: the same or one DELETE /api/v3/order per order).
The venue fills the resting limit buy at its price first (trade, executionReport TRADE FILLED on the user data stream), then
takes the cancel, which finds nothing open: Binance's -2011 "Unknown order sent.". Detected: the venue's -2011 refusals
(TcNodeCancelRejected) or the node's orders disagreeing with the venue's (TcNodeOrderStateDisagrees), delivered by
Alertmanager. Recorded: whether the node ended with the order FILLED or CANCELED (a phantom cancel, nautilus_trader 4288),
whether the fill was counted and whether its position matched the venue's."""

from __future__ import annotations

import re
import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeCancelRejected", "TcNodeOrderStateDisagrees")
N, SEED = 2, 28  # cancel_fill_race=N/SEED: one of the next N cancels of resting orders, drawn by random.Random(SEED)
DETECT_TIMEOUT_S = 20.0
SETTLE_S = 6.0  # after the race: time for the fill report and NautilusTrader's own checks to settle the order
NODE_S = 90  # engine.node.duration_seconds: the node outlives the detection window, detection off too


def execute(ctx: Context) -> Observation:
    fault = f"cancel_fill_race={N}/{SEED}"
    with NodeLab(ctx, "node-cancel-fill-race", duration_seconds=NODE_S) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("the node's first round trip", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 2, timeout=30)
        lab.wait_node("a resting order at the venue", lambda: lab.venue_open_orders(), timeout=20)
        seq = lab.stack.last_seq()
        lab.faults(fault)
        engaged = ctx.tc("killswitch", "engage", "--reason", "node drill: cancel the resting order")  # the node cancels all
        race = lab.wait_node("a fill to beat the node's cancel", lambda: lab.fault_records("cancels_raced"), timeout=20)[0]
        race_wall = race["at_ms"] / 1000
        since = time.monotonic() - max(0.0, time.time() - race_wall)
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        time.sleep(max(0.0, SETTLE_S - (time.time() - race_wall)))
        state = lab.venue_state()
        beat = _next_beat(lab)
        life = lab.lifecycle() or {}
        lab.stop_node()
        cids = set(race["client_order_ids"])
        node_orders = {o["client_order_id"]: o for o in lab.output("orders").get("orders", []) if o.get("client_order_id") in cids}
        node_fills = [f for f in lab.output("fills").get("fills", []) if f.get("client_order_id") in cids]
        pattern = "|".join(re.escape(c) for c in cids) or "$^"
        logged = lab.log_lines(rf"-2011|Unknown order sent|(OrderCanceled|OrderCancelRejected|OrderFilled).*({pattern})", limit=8)
    detected = alert is not None
    venue_orders = {o["clientOrderId"]: o for o in state["orders"] if o["clientOrderId"] in cids}
    venue_status = sorted({o["status"] for o in venue_orders.values()})
    node_status = sorted({str(o.get("status")) for o in node_orders.values()})
    venue_trades = [t for t in state["trades"] if t["orderId"] in set(race["order_ids"])]
    node_pos, venue_pos = _node_position(beat), _venue_position(state["trades"])
    said = _said(logged)
    phantom = "CANCELED" in node_status and "FILLED" in venue_status
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after a fill beat the node's cancel ({race['request']}, "
                f"answered -2011)" if detected else
                f"no cancel-rejected or node-vs-venue notification within {DETECT_TIMEOUT_S:g} s of a fill beating the node's cancel")
    findings = [
        f"the venue filled the resting order the node was cancelling ({race['request']}) and answered the cancel -2011 \"Unknown "
        "order sent.\"; NautilusTrader " + (", ".join(said) if said else "logged nothing about it that the drill recognizes"),
        ("a phantom cancel: the node ended with the order CANCELED while the venue has it FILLED" if phantom else
         f"the node ended with the order {', '.join(node_status) or 'unknown'} (the venue: {', '.join(venue_status) or 'nothing'})")
        + f"; it counted {len(node_fills)} fill(s) of it against the venue's {len(venue_trades)} trade(s)",
        (f"its position matched the venue's ({node_pos.normalize():f} BTC) {SETTLE_S:g} s after the race" if node_pos == venue_pos else
         f"{SETTLE_S:g} s after the race its position ({node_pos.normalize():f} BTC) was {abs(node_pos - venue_pos).normalize():f} "
         "BTC off the venue's"),
    ]
    evidence = {"fault": fault, "seed": SEED, "n": N, "schedule": [race["cancel"]], "cancels_raced": [race],
                "engage_exit_code": engaged.code, "cancelled_at_halt": life.get("cancelled_at_halt", []),
                "venue_status": venue_status, "node_status": node_status, "phantom_cancel": phantom,
                "node_fills_of_order": len(node_fills), "venue_trades_of_order": len(venue_trades),
                "node_position_at_end": str(node_pos), "venue_position_at_end": str(venue_pos), "nautilus_said": said,
                "nautilus_log": logged}
    return observation(detected, observed, alert, evidence, findings)


def _said(lines: list[str]) -> list[str]:
    """What NautilusTrader's log said about the race, in words that do not change with ids or times."""
    said = []
    retries = sum("Retrying" in line for line in lines)
    if retries:
        said.append(f"retried the cancel {retries} time(s) (-2011 is in its retry set), each answered -2011")
    if any(line.find("Failed on cancel") >= 0 for line in lines):
        said.append("then logged the cancel as failed (ERROR)")
    elif any("-2011" in line or "Unknown order sent" in line for line in lines):
        said.append("logged the -2011 answer")
    if any("OrderCancelRejected" in line for line in lines):
        said.append("emitted OrderCancelRejected")
    if any("OrderFilled" in line for line in lines):
        said.append("applied the fill")
    if any("OrderCanceled" in line for line in lines):
        said.append("emitted OrderCanceled")
    return said


DRILL = Drill("node_cancel_fill_race", "the venue fills a resting order as the node cancels it (-2011); an alert is delivered",
              f"once the node trades, the kill switch makes it cancel its resting limit buy; the venue fills it at its price just before "
              f"taking the cancel chosen by seed {SEED} (cancel_fill_race={N}/{SEED}) and answers that cancel -2011 \"Unknown order sent.\"",
              "TcNodeCancelRejected or TcNodeOrderStateDisagrees delivered; whether the node ended with the order FILLED or CANCELED "
              "(phantom cancel), whether it counted the fill and its position against the venue's is recorded", execute, kind="node")
