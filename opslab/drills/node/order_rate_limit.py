"""node_order_rate_limit: Binance's runtime order-rate limit bites while the node trades (fault order_rate_limit, a limit per
TEN_SECONDS interval drawn by its seed, switched on over the admin API): every new order beyond the limit is refused with
HTTP 429 and -1015 "Too many new orders; current limit is N orders per TEN_SECONDS." and never placed. Both releases submit
orders over REST, so the fault acts the same on the WebSocket API and listenKey profiles. Detected: the venue's refusals by
error code (tc_venue_rejects_total{code="-1015"}) or the node's OrderRejected events by code, TcNodeOrderRateLimited
delivered by Alertmanager. Recorded: what NautilusTrader did with the refused submits (retried? REJECTED? did it send fewer
orders afterwards?) and whether its position stayed the venue's."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation
from opslab.venue import faults as venue_faults

ALERTS = ("TcNodeOrderRateLimited",)
N, SEED = 2, 28  # order_rate_limit=N/SEED: the limit random.Random(SEED) draws in 1..N (1 new order per TEN_SECONDS)
DETECT_TIMEOUT_S = 20.0
WATCH_S = 11.0  # from the fault: how long the node's submits are watched (more than one interval of 10 s)
NODE_S = 90  # engine.node.duration_seconds: the node outlives the detection window and the watch, detection off too
LIMIT = venue_faults.order_limit_schedule(f"{N}/{SEED}")["limit"]


def execute(ctx: Context) -> Observation:
    fault = f"order_rate_limit={N}/{SEED}"
    limit = LIMIT
    with NodeLab(ctx, "node-order-rate-limit", duration_seconds=NODE_S) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("the node's first round trip", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 2, timeout=30)
        seq = lab.stack.last_seq()
        orders_before = len(lab.venue_state()["orders"])
        since = lab.faults(fault)
        fault_wall = time.time()
        first = lab.wait_node("the venue to refuse an order with -1015", lambda: lab.fault_records("orders_refused"), timeout=30)[0]
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        time.sleep(max(0.0, WATCH_S - (time.time() - fault_wall)))
        watched = time.time() - fault_wall
        refused = lab.fault_records("orders_refused")
        rejects = lab._admin("GET", "/admin/faults").get("rejects", {})
        state = lab.venue_state()
        beat = _next_beat(lab)
        lab.stop_node()
        orders = lab.output("orders").get("orders", [])
        logged = lab.log_lines(r"-1015|Too many new orders|Retrying", limit=8)
    detected = alert is not None
    placed = len(state["orders"]) - orders_before
    refused_ids = {r["client_order_id"] for r in refused}
    node_status = sorted({o.get("status") for o in orders if o.get("client_order_id") in refused_ids} - {None})
    node_rejected = beat.get("orders_rejected") or {}
    retried = any("Retrying" in line for line in logged)
    attempts = len(refused) + placed
    resent = len(refused) - len(refused_ids)  # the same client order id refused more than once: a retry reached the venue
    node_pos, venue_pos = _node_position(beat), _venue_position(state["trades"])
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue's order-rate limit went to {limit} per "
                f"TEN_SECONDS (first -1015 on a {first['side']} {first['type']})" if detected else
                f"no order-rate-limit notification within {DETECT_TIMEOUT_S:g} s of the venue's limit going to {limit} per TEN_SECONDS")
    findings = [
        f"in the {watched:.0f} s after the limit went to {limit} new order(s) per TEN_SECONDS the node sent {attempts} new order(s): "
        f"{placed} placed, {len(refused)} refused with 429 -1015 ({len(refused_ids)} distinct client order id(s))",
        ("NautilusTrader retried the refused submits" if retried or resent else "NautilusTrader did not retry a refused submit (-1015 is "
         "not in its retry set)") + "; "
        + (f"it REJECTED {sum(node_rejected.values())} order(s) (by code {dict(node_rejected)})" if node_rejected else "it rejected no order")
        + (f", the refused orders ended {', '.join(node_status)} in the node" if node_status else ""),
        "it did not back off: its strategy kept submitting at its own cadence and every submit over the limit was refused"
        if len(refused) > 1 else "only one submit went over the limit in the watch",
        (f"the node's position matched the venue's ({node_pos.normalize():f} BTC): refused orders were never placed" if node_pos == venue_pos else
         f"the node's position ({node_pos.normalize():f} BTC) differed from the venue's ({venue_pos.normalize():f} BTC)"),
    ]
    evidence = {"fault": fault, "seed": SEED, "n": N, "limit": limit, "schedule": {"limit": limit, "window_s": 10},
                "orders_refused": refused[:20], "rejects_by_code": rejects, "orders_placed_in_watch": placed,
                "submits_in_watch": attempts, "watch_seconds": round(watched, 1), "refused_distinct_client_ids": len(refused_ids),
                "node_orders_rejected": node_rejected, "node_status_of_refused": node_status, "node_retried": retried or resent > 0,
                "node_position_at_end": str(node_pos), "venue_position_at_end": str(venue_pos), "nautilus_log": logged}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_order_rate_limit", "the venue's order-rate limit refuses the node's new orders with -1015; the alert is delivered",
              f"while the node trades, the venue allows {LIMIT} new order(s) per TEN_SECONDS interval (seed {SEED} drew it in 1..{N}: "
              f"order_rate_limit={N}/{SEED}, switched on over the admin API): every order beyond it is refused with HTTP 429 and -1015 and not placed",
              "TcNodeOrderRateLimited delivered (the venue's -1015 refusals by error code, or the node's rejections by code); what "
              "NautilusTrader did with the refused submits (retry, REJECTED, backing off) and its position against the venue's is recorded",
              execute, kind="node")
