"""node_orders_rejected: the venue refuses some of the node's orders on their merits while it trades (fault reject_orders: each
new order placement refused with a probability drawn by its seed, with Binance's -2010 "Account has insufficient balance for
requested action.", HTTP 400; a refused order is never placed). Both releases submit orders over REST, so the fault acts the
same on the WebSocket API and listenKey profiles. Detected: the node's OrderRejected events by code (tc_node_orders_rejected),
TcNodeOrdersRejected delivered by Alertmanager. Recorded: what NautilusTrader did with each refused submit (retried it?
REJECTED it with the venue's reason?), whether the strategy kept trading, and whether the node's position stayed the venue's."""

from __future__ import annotations

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeOrdersRejected",)
PCT, SEED, CODE = 50, 28, -2010  # reject_orders=PCT/SEED@CODE: each placement refused when random.Random(SEED) draws under PCT %
DETECT_TIMEOUT_S = 30.0
NODE_S = 90  # engine.node.duration_seconds: the node outlives the detection window, detection off too


def execute(ctx: Context) -> Observation:
    fault = f"reject_orders={PCT}/{SEED}@{CODE}"
    with NodeLab(ctx, "node-orders-rejected", duration_seconds=NODE_S) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("the node's first fill", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 1, timeout=30)
        seq = lab.stack.last_seq()
        orders_before = len(lab.venue_state()["orders"])
        since = lab.faults(fault)
        lab.wait_node("the venue to refuse an order", lambda: lab.fault_records("orders_rejected"), timeout=30)
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        lab.faults()
        rejected = lab.fault_records("orders_rejected")
        state = lab.venue_state()
        beat = _next_beat(lab)
        lab.stop_node()
        orders = lab.output("orders").get("orders", [])
        logged = lab.log_lines(rf"{CODE}|insufficient balance|Retrying", limit=8)
    detected = alert is not None
    placed = len(state["orders"]) - orders_before
    ids = {r["client_order_id"] for r in rejected}
    node_status = sorted({o.get("status") for o in orders if o.get("client_order_id") in ids} - {None})
    node_rejected = (beat.get("orders_rejected") or {}).get(str(CODE), 0)
    resent = len(rejected) - len(ids)  # the same client order id refused again: a retry reached the venue
    node_pos, venue_pos = _node_position(beat), _venue_position(state["trades"])
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue began refusing {PCT} % of the node's orders "
                f"with {CODE}" if detected else
                f"no orders-rejected notification within {DETECT_TIMEOUT_S:g} s of the venue refusing {PCT} % of the node's orders")
    findings = [
        f"the venue refused {len(rejected)} of the node's order placement(s) with {CODE} ({len(ids)} distinct client order id(s)) and "
        f"placed {placed} while the fault was on; " + (f"NautilusTrader retried {resent} refused submit(s)" if resent else
                                                      "NautilusTrader did not retry a refused submit"),
        f"the refused orders ended {', '.join(node_status) or 'unknown'} in the node ({node_rejected} OrderRejected event(s) with "
        f"{CODE} in its heartbeat), its strategy kept trading ({placed} order(s) placed meanwhile)",
        f"its position at the end was {abs(node_pos - venue_pos).normalize():f} BTC off the venue's",
    ]
    evidence = {"fault": fault, "seed": SEED, "pct": PCT, "code": CODE, "schedule": [r["order"] for r in rejected],
                "orders_rejected": rejected[:20], "orders_placed_during": placed, "node_status_of_rejected": node_status,
                "node_rejected_with_code": node_rejected, "resent": resent, "node_position": str(node_pos),
                "venue_position": str(venue_pos), "nautilus_log": logged}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_orders_rejected", "the venue refuses some of the node's orders with -2010; the orders-rejected alert is delivered",
              f"once the node trades, the venue refuses each new order placement with probability {PCT} % drawn by seed {SEED}, with "
              f"Binance's {CODE} 'Account has insufficient balance for requested action.' (fault reject_orders={PCT}/{SEED}@{CODE})",
              "TcNodeOrdersRejected delivered (the node's OrderRejected events by code); whether NautilusTrader retried the refused "
              "submits, what the orders ended as and whether the position stayed the venue's is recorded", execute, kind="node")
