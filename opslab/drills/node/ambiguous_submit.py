"""node_ambiguous_submit: the venue accepts one of the node's orders (it fills or rests there, and its executionReport goes out
on the user data stream) but the HTTP answer to the submit is lost (fault ack_lost, a seeded schedule, switched on over the
admin API once the node trades): Binance's status-unknown answer, a 503 with -1007 "execution status unknown". Both
releases submit orders over REST (POST /api/v3/order, the exec client's `new_order`; 1.231's WebSocket API carries only the
user stream) with NautilusTrader's HttpClient, which has no timeout of its own: a dropped connection is an immediate
HttpError, a held answer is waited for. Detected: an order SUBMITTED without an answer for too long
(TcNodeOrderUnacknowledged), or the node's orders or fills disagree with the venue's (TcNodeOrderStateDisagrees,
TcNodeFillsBehindVenue), delivered by Alertmanager. Recorded: what NautilusTrader did with the ambiguous order (retried?
REJECTED? SUBMITTED? FILLED?), how many orders the venue holds under its client order id, and whether reconciliation
brought the node back to the venue's fills before it stopped."""

from __future__ import annotations

import re
import time
from typing import Any

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeOrderUnacknowledged", "TcNodeOrderStateDisagrees", "TcNodeFillsBehindVenue")
N, SEED, MODE = 2, 28, "unknown"  # ack_lost=N/SEED@MODE: one of the next N accepted placements, drawn by random.Random(SEED)
DETECT_TIMEOUT_S = 25.0
SETTLE_S = 15.0  # after the lost answer: time for NautilusTrader's own checks (in-flight every 2 s after 5 s) to correct the node


def _said(lines: list[str]) -> list[str]:
    """What NautilusTrader's log said about the ambiguous order, in words that do not change with ids or times."""
    said = []
    if any("Retrying" in line for line in lines):
        said.append("retried the submit after the status-unknown answer")
    if any("Duplicate order sent" in line for line in lines):
        said.append("got -2010 Duplicate order sent on the retry")
    if any("was not equal to" in line and "venue_order_id" in line for line in lines):
        said.append("an error applying the second order's events (another venue order id under the same client order id)")
    if any("overfill" in line.lower() for line in lines):
        said.append("rejected the second order's fill as an overfill")
    return said


def _quiet(lab: NodeLab, timeout: float = 10.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The venue's state and a node heartbeat written after it, read while no trade is newer than a second and none came
    between the two reads (the node trades every few seconds: a read across a trade compares two different moments)."""
    deadline = time.monotonic() + timeout
    while True:
        state = lab.venue_state()
        trades = state["trades"]
        if not trades or time.time() - trades[-1]["time"] / 1000 >= 1.0 or time.monotonic() > deadline:
            beat = _next_beat(lab)
            if len(lab.venue_state()["trades"]) == len(trades) or time.monotonic() > deadline:
                return state, beat
        time.sleep(0.2)


def execute(ctx: Context) -> Observation:
    fault = f"ack_lost={N}/{SEED}@{MODE}"
    with NodeLab(ctx, "node-ambiguous-submit") as lab:
        lab.start_node()
        lab.wait_running()
        # the resting limit buy and the first round trip first: the fault's next accepted placement is a market order
        lab.wait_node("the node's first round trip", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 2, timeout=30)
        seq = lab.stack.last_seq()
        lab.faults(fault)
        lost = lab.wait_node("the venue to lose a submit's answer", lambda: lab.fault_records("acks_lost"), timeout=30)[0]
        lost_wall = lost["at_ms"] / 1000
        since = time.monotonic() - max(0.0, time.time() - lost_wall)
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        state_at_detection, beat_at_detection = _quiet(lab)
        time.sleep(max(0.0, SETTLE_S - (time.time() - lost_wall)))
        state, beat = _quiet(lab)
        beats = [b for b in lab.heartbeats() if b.get("ts", "") and b.get("seq", 0) >= 1]
        lab.stop_node()
        cid = lost["client_order_id"]
        node_orders = {o["client_order_id"]: o for o in lab.output("orders").get("orders", [])}
        node_fills = [f for f in lab.output("fills").get("fills", []) if f.get("client_order_id") == cid]
        c = re.escape(cid)
        logged = lab.log_lines(rf"Retrying.*{c}|{c}.*(Duplicate|Failed)|Error on applying.*{c}|venue_order_id.*not equal|(?i:overfill).*{c}",
                               limit=8)
        rejected = [line for line in lab.log_lines(rf"OrderRejected.*{re.escape(cid)}", limit=2)]
    detected = alert is not None
    venue_same = [o for o in state["orders"] if o["clientOrderId"] == cid]
    venue_ids = {o["orderId"] for o in venue_same}
    venue_trades = [t for t in state["trades"] if t["orderId"] in venue_ids]
    node_status = node_orders.get(cid, {}).get("status")
    max_unacked = max((b.get("oldest_unacknowledged_order_seconds") or 0.0 for b in beats), default=0.0)
    said = _said(logged)
    end_behind = len(state["trades"]) - (beat.get("fills") or 0)
    pos_off = abs(_node_position(beat) - _venue_position(state["trades"])).normalize()
    position = ("its position matched the venue's (the second execution reached the position, not the order's fills)" if not pos_off
                else f"its position {pos_off:f} BTC off the venue's")
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue lost the answer to order {cid} "
                f"({lost['type']}, {lost['status']} at the venue, status unknown -1007)" if detected else
                f"no unacknowledged-order or node-vs-venue notification within {DETECT_TIMEOUT_S:g} s of the lost answer to order {cid}")
    findings = [
        f"the venue answered Binance's status unknown (503, -1007) to a {lost['type']} order it had {lost['status']}; NautilusTrader "
        + (", ".join(said) if said else "logged nothing about it that the drill recognizes")
        + f"; the venue then held {len(venue_same)} order(s) under that client order id with {len(venue_trades)} trade(s)",
        f"the ambiguous order ended {node_status} in the node with {len(node_fills)} fill(s), while the venue had "
        + (", ".join(sorted(o["status"] for o in venue_same)) or "nothing")
        + (f" (orders REJECTED by code {beat.get('orders_rejected')})" if beat.get("orders_rejected") else ""),
        "the node acknowledged it from the user stream's executionReport: "
        + (f"no order stayed SUBMITTED longer than {max_unacked:g} s" if max_unacked < 5 else f"an order stayed SUBMITTED up to {max_unacked:g} s"),
        (f"with NautilusTrader's default reconciliation (at start-up, in-flight orders every 2 s) the node's fills were still "
         f"{end_behind} behind the venue's trades {SETTLE_S:g} s after the lost answer; {position}" if end_behind > 0 else
         f"{SETTLE_S:g} s after the lost answer the node's fills matched the venue's trades; {position}"),
    ]
    evidence = {"fault": fault, "seed": SEED, "n": N, "mode": MODE, "schedule": [lost["order"]], "acks_lost": [lost],
                "venue_orders_of_client_id": [{"orderId": o["orderId"], "status": o["status"], "type": o["type"]} for o in venue_same],
                "venue_trades_of_client_id": len(venue_trades), "node_status": node_status, "node_fills_of_order": len(node_fills),
                "node_orders_rejected": beat.get("orders_rejected"), "max_oldest_unacknowledged_seconds": max_unacked,
                "node_fills_at_detection": beat_at_detection.get("fills"), "venue_trades_at_detection": len(state_at_detection["trades"]),
                "node_fills_at_end": beat.get("fills"), "venue_trades_at_end": len(state["trades"]),
                "node_position_at_end": str(_node_position(beat)), "venue_position_at_end": str(_venue_position(state["trades"])),
                "nautilus_said": said, "nautilus_log": logged + rejected}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_ambiguous_submit", "the venue accepts an order but the submit's answer is lost (status unknown); an alert is delivered",
              f"the venue places the next of the node's orders its seed chooses (ack_lost={N}/{SEED}@{MODE}, switched on while the node "
              "trades) and reports it on the user data stream, but answers the submit with Binance's status unknown (503, -1007)",
              "TcNodeOrderUnacknowledged, TcNodeOrderStateDisagrees or TcNodeFillsBehindVenue delivered; what NautilusTrader did with "
              "the ambiguous order (retry, status, fills) against the venue's orders under its client order id is recorded", execute, kind="node")
