"""node_ambiguous_submit: the venue accepts the node's order (it rests or fills there, and its executionReport goes out on the
user data stream) but answers the submit with Binance's status unknown, a 503 with -1007 "execution status unknown" (fault
ack_lost, a recorded schedule): first the node's resting limit buy (ack_lost=1@unknown:LIMIT, from the venue's start), then,
switched on over the admin API once the node trades, the market order seed 28 draws (ack_lost=2/28@unknown). Both releases
submit orders over REST (POST /api/v3/order, the exec client's `new_order`; 1.231's WebSocket API carries only the user
stream) with NautilusTrader's HttpClient, which has no timeout of its own: a dropped connection is an immediate HttpError,
a held answer is waited for. Detected: an order SUBMITTED without an answer too long (TcNodeOrderUnacknowledged), or the
node's open orders or fills disagree with the venue's (TcNodeOrderStateDisagrees, TcNodeFillsBehindVenue), delivered by
Alertmanager. Recorded, for each ambiguous order: what NautilusTrader did with it (retried? REJECTED while it rests at the
venue? filled twice?), the venue's orders under its client order id, and whether the node agreed with the venue 15 s later."""

from __future__ import annotations

import re
import time
from typing import Any

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeOrderUnacknowledged", "TcNodeOrderStateDisagrees", "TcNodeFillsBehindVenue")
LIMIT_FAULT = "ack_lost=1@unknown:LIMIT"  # the first LIMIT order the venue accepts: the node's resting limit buy
N, SEED, MODE = 2, 28, "unknown"  # then ack_lost=N/SEED@MODE: one of the next N accepted placements, drawn by random.Random(SEED)
DETECT_TIMEOUT_S = 25.0
NODE_S = 120  # engine.node.duration_seconds: with detection off the drill waits out two detection windows and the settling
SETTLE_S = 15.0  # after a lost answer: time for NautilusTrader's own checks (in-flight every 2 s after 5 s) to correct the node


def _said(lines: list[str]) -> list[str]:
    """What NautilusTrader's log said about an ambiguous order, in words that do not change with ids or times."""
    said = []
    if any("Retrying" in line for line in lines):
        said.append("retried the submit after the status-unknown answer")
    if any("Duplicate order sent" in line for line in lines):
        said.append("got -2010 Duplicate order sent on the retry")
    if any("Error on applying" in line for line in lines):  # events of the order's second venue order id
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


def _since(at_ms: int) -> float:
    """The monotonic time of the Unix milliseconds AT_MS (in the past)."""
    return time.monotonic() - max(0.0, time.time() - at_ms / 1000)


def _logged(lab: NodeLab, cid: str) -> list[str]:
    c = re.escape(cid)
    return lab.log_lines(rf"Retrying.*{c}|{c}.*(Duplicate|Failed)|Error on applying.*{c}|(?i:overfill).*{c}"
                         rf"|OrderRejected.*{c}", limit=10)


def _case(lost: dict[str, Any], state: dict[str, Any], node_orders: dict[str, Any], node_fills: list[dict[str, Any]],
          said: list[str]) -> dict[str, Any]:
    """One ambiguous order: the venue's orders under its client order id against the node's."""
    cid = lost["client_order_id"]
    venue_same = [o for o in state["orders"] if o["clientOrderId"] == cid]
    ids = {o["orderId"] for o in venue_same}
    return {"lost": lost, "venue_orders": [{"orderId": o["orderId"], "status": o["status"], "type": o["type"]} for o in venue_same],
            "venue_trades": sum(t["orderId"] in ids for t in state["trades"]), "node_status": node_orders.get(cid, {}).get("status"),
            "node_fills": sum(f.get("client_order_id") == cid for f in node_fills), "nautilus_said": said}


def _words(case: dict[str, Any]) -> str:
    lost = case["lost"]
    return (f"the venue answered status unknown (503, -1007) to the {lost['type']} order it had {lost['status']}; NautilusTrader "
            + (", ".join(case["nautilus_said"]) if case["nautilus_said"] else "logged nothing the drill recognizes about it")
            + f"; the order ended {case['node_status']} in the node with {case['node_fills']} fill(s) while the venue held "
            + (" and ".join(o["status"] for o in case["venue_orders"]) or "nothing") + f" under its client order id ({case['venue_trades']} trade(s))")


def execute(ctx: Context) -> Observation:
    fault = f"ack_lost={N}/{SEED}@{MODE}"
    with NodeLab(ctx, "node-ambiguous-submit", venue_faults=(LIMIT_FAULT,), duration_seconds=NODE_S) as lab:
        seq = lab.stack.last_seq()
        lab.start_node()
        lab.wait_running()
        # the limit buy's answer is lost as the node starts; the drill is detected on it
        limit = lab.wait_node("the venue to lose the limit order's answer", lambda: lab.fault_records("acks_lost"), timeout=30)[0]
        alert = lab.detect(ALERTS, _since(limit["at_ms"]), timeout=DETECT_TIMEOUT_S, after_seq=seq)
        state_limit, beat_limit = _quiet(lab)
        # then a market order's, switched on over the admin API once the node has made a round trip
        lab.wait_node("the node's first round trip", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 2, timeout=30)
        seq_market = lab.stack.last_seq()
        lab.faults(fault)
        market = lab.wait_node("the venue to lose a market order's answer", lambda: lab.fault_records("acks_lost")[1:], timeout=30)[0]
        alert_market = lab.detect(("TcNodeFillsBehindVenue",), _since(market["at_ms"]), timeout=DETECT_TIMEOUT_S, after_seq=seq_market)
        time.sleep(max(0.0, SETTLE_S - (time.time() - market["at_ms"] / 1000)))
        state, beat = _quiet(lab)
        beats = lab.heartbeats()
        lab.stop_node()
        node_orders = {o["client_order_id"]: o for o in lab.output("orders").get("orders", [])}
        node_fills = lab.output("fills").get("fills", [])
        logged = {cid: _logged(lab, cid) for cid in (limit["client_order_id"], market["client_order_id"])}
    detected = alert is not None
    first = _case(limit, state_limit, node_orders, node_fills, _said(logged[limit["client_order_id"]]))
    second = _case(market, state, node_orders, node_fills, _said(logged[market["client_order_id"]]))
    max_unacked = max((b.get("oldest_unacknowledged_order_seconds") or 0.0 for b in beats), default=0.0)
    open_off = (beat_limit.get("open_orders"), sum(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in state_limit["orders"]))
    end_behind = len(state["trades"]) - (beat.get("fills") or 0)
    pos_off = abs(_node_position(beat) - _venue_position(state["trades"])).normalize()
    position = ("its position matched the venue's (the second execution reached the position, not the order's fills)" if not pos_off
                else f"its position {pos_off:f} BTC off the venue's")
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue answered status unknown to the node's "
                f"{limit['type']} order (resting at the venue)" if detected else
                f"no unacknowledged-order or node-vs-venue notification within {DETECT_TIMEOUT_S:g} s of the lost answer to the "
                f"node's {limit['type']} order")
    findings = [
        "resting limit order: " + _words(first) + f"; the node then held {open_off[0]} open order(s), the venue {open_off[1]}",
        "market order: " + _words(second) + (f"; TcNodeFillsBehindVenue delivered {alert_market['seconds']:.1f} s after the lost answer"
                                              if alert_market else "; no fills-behind notification followed"),
        (f"with NautilusTrader's default reconciliation (at start-up, in-flight orders every 2 s) the node's fills were still "
         f"{end_behind} behind the venue's trades {SETTLE_S:g} s after the market order's lost answer; {position}" if end_behind > 0 else
         f"{SETTLE_S:g} s after the market order's lost answer the node's fills matched the venue's trades; {position}"),
        "the node acknowledged both orders from the user stream's executionReport: "
        + (f"no order stayed SUBMITTED longer than {max_unacked:g} s" if max_unacked < 5 else f"an order stayed SUBMITTED up to {max_unacked:g} s"),
    ]
    evidence = {"fault": fault, "limit_fault": LIMIT_FAULT, "seed": SEED, "n": N, "mode": MODE, "schedule": [market["order"]],
                "acks_lost": [limit, market], "limit_order": first, "market_order": second,
                "node_open_orders_after_limit": open_off[0], "venue_open_orders_after_limit": open_off[1],
                "alert_market": alert_market, "max_oldest_unacknowledged_seconds": max_unacked,
                "node_orders_rejected": beat.get("orders_rejected"),
                "node_fills_at_end": beat.get("fills"), "venue_trades_at_end": len(state["trades"]),
                "node_position_at_end": str(_node_position(beat)), "venue_position_at_end": str(_venue_position(state["trades"])),
                "nautilus_log": [line for lines in logged.values() for line in lines]}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_ambiguous_submit", "the venue accepts an order but answers its submit with status unknown; an alert is delivered",
              f"the venue places the node's resting limit buy ({LIMIT_FAULT}) and later the market order seed {SEED} draws "
              f"(ack_lost={N}/{SEED}@{MODE}, switched on while the node trades) and reports them on the user data stream, but "
              "answers their submits with Binance's status unknown (503, -1007)",
              "TcNodeOrderUnacknowledged, TcNodeOrderStateDisagrees or TcNodeFillsBehindVenue delivered; what NautilusTrader did "
              "with each ambiguous order (retry, status, fills) against the venue's orders under its client order id is recorded",
              execute, kind="node")
