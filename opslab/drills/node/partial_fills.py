"""node_partial_fills: the venue fills the node's market orders in parts (fault partial_fills=30/40/30@SEED, a seeded
schedule of which orders): each part its own trade and its own executionReport (TRADE, PARTIALLY_FILLED, then FILLED),
PARTIAL_GAP_MS apart, on the listenKey stream or the WebSocket API subscription, whichever the node's NautilusTrader speaks.
Detected: an order of the node stays partially filled (TcNodeOrderPartiallyFilled), or the node's open orders disagree with
the venue's (TcNodeOrderStateDisagrees), delivered by Alertmanager. Recorded: whether the node's order states agreed with
the venue's at each heartbeat during the sequence, and whether its fills, position and final order states matched the
venue's trades after the last part."""

from __future__ import annotations

import time
from typing import Any

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeOrderStateDisagrees", "TcNodeOrderPartiallyFilled")
SPLIT, SEED = "30/40/30", 28  # partial_fills=SPLIT@SEED: the seed chooses which of the next 8 marketable orders are split
DETECT_TIMEOUT_S = 20.0
SETTLE_TIMEOUT_S = 20.0  # after detection: every split order done at the venue, the node's last heartbeat after it


def _venue_open(orders: list[dict[str, Any]]) -> tuple[int, int]:
    open_ = [o for o in orders if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    return len(open_), sum(o["status"] == "PARTIALLY_FILLED" for o in open_)


def _settled(lab: NodeLab, splits: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The venue's state once every split order so far is FILLED and no trade is newer than a second, else None."""
    state = lab.venue_state()
    ids = {s["order_id"] for s in splits}
    if any(o["status"] != "FILLED" for o in state["orders"] if o["orderId"] in ids):
        return None
    if state["trades"] and time.time() - state["trades"][-1]["time"] / 1000 < 1.0:
        return None
    return state


def execute(ctx: Context) -> Observation:
    fault = f"partial_fills={SPLIT}@{SEED}"
    with NodeLab(ctx, "node-partial-fills", venue_faults=(fault,)) as lab:
        lab.start_node()
        lab.wait_running()
        seq = lab.stack.last_seq()
        first = lab.wait_node("the venue to split an order", lambda: lab.fault_records("partial_fills"), timeout=20)[0]
        split_wall = first["at_ms"] / 1000
        since = time.monotonic() - max(0.0, time.time() - split_wall)
        # during the sequence: the node's partially filled and open orders at each new heartbeat against the venue's then
        samples: list[dict[str, Any]] = []
        alert = None
        deadline = time.monotonic() + DETECT_TIMEOUT_S
        last_seq = 0
        while time.monotonic() < deadline:
            found = lab.stack.find_alert(ALERTS, "firing", seq)
            if found:
                line, a = found
                alert = {"alertname": a["labels"]["alertname"], "seconds": round(time.monotonic() - since, 3), "seq": line["seq"],
                         "received_at": line["ts"], "severity": a["labels"].get("severity"),
                         "runbook_url": a.get("annotations", {}).get("runbook_url")}
                break
            beat = lab.heartbeat() or {}
            if beat.get("seq", 0) > last_seq:
                last_seq = beat["seq"]
                v_open, v_partial = _venue_open(lab.venue_state()["orders"])
                samples.append({"t": round(time.time() - split_wall, 3), "node_open": beat.get("open_orders"),
                                "node_partially_filled": beat.get("orders_partially_filled"), "venue_open": v_open,
                                "venue_partially_filled": v_partial})
            time.sleep(0.2)
        splits = lab.fault_records("partial_fills")
        try:
            state = lab.wait_node("every split order filled at the venue", lambda: _settled(lab, splits), timeout=SETTLE_TIMEOUT_S)
        except TimeoutError:
            state = lab.venue_state()
        splits = [s for s in lab.fault_records("partial_fills") if s["order_id"] in {s0["order_id"] for s0 in splits}]
        beat = _next_beat(lab)  # written after the venue's count: every report sent by then has reached the node
        trades = state["trades"]
        fired = sorted({a["labels"]["alertname"] for line in lab.stack.notifications() if line["seq"] > seq
                        for a in line["notification"]["alerts"] if a["status"] == "firing"})  # every alert delivered meanwhile
        lab.stop_node()
        node_orders = {o["client_order_id"]: o for o in lab.output("orders").get("orders", [])}
        node_fills = lab.output("fills").get("fills", [])
    detected = alert is not None
    split_ids = {s["client_order_id"] for s in splits}
    venue_orders = {o["clientOrderId"]: o for o in state["orders"]}
    stuck = sorted(c for c in split_ids if node_orders.get(c, {}).get("status") == "PARTIALLY_FILLED"
                   and venue_orders.get(c, {}).get("status") == "FILLED")
    status_off = sorted(c for c in split_ids if node_orders.get(c, {}).get("status") != venue_orders.get(c, {}).get("status"))
    venue_parts = {c: sum(t["orderId"] == venue_orders[c]["orderId"] for t in trades) for c in split_ids if c in venue_orders}
    node_parts = {c: sum(f.get("client_order_id") == c for f in node_fills) for c in split_ids}
    parts_off = sorted(c for c in split_ids if node_parts.get(c) != venue_parts.get(c))
    disagreed = [s for s in samples if (s["node_open"], s["node_partially_filled"]) != (s["venue_open"], s["venue_partially_filled"])]
    run = longest = 0
    for s in samples:  # heartbeats in a row that disagreed: one alone is a report in flight between the two reads
        run = run + 1 if s in disagreed else 0
        longest = max(longest, run)
    partial_seen = [s for s in samples if s["node_partially_filled"]]
    node_pos, venue_pos = _node_position(beat), _venue_position(trades)
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue split order {first['client_order_id']} "
                f"{SPLIT} ({first['gap_ms']} ms apart)" if detected else
                f"no partial-fill or order-state notification within {DETECT_TIMEOUT_S:g} s of the first split (order {first['client_order_id']})")
    findings = [
        f"during the partial sequence the node showed an order PARTIALLY_FILLED at {len(partial_seen)} of {len(samples)} heartbeats; "
        + ("its open and partially filled orders matched the venue's at every one" if not disagreed else
           f"its open and partially filled orders differed from the venue's at {len(disagreed)} of them, never two in a row (a report "
           "in flight between the two reads)" if longest <= 1 else
           f"its open and partially filled orders differed from the venue's at {len(disagreed)} of them, up to {longest} in a row"),
        f"after the last part of {len(splits)} split order(s): the node held "
        + (f"the venue's parts for every split order (one fill per part, {sum(node_parts.values())} in all)" if not parts_off else
           f"a different number of fills than the venue's parts for {len(parts_off)} split order(s)")
        + f"; node fills {beat.get('fills')} and fill events {beat.get('fill_events')} against venue trades {len(trades)}; "
        f"the node's position {abs(node_pos - venue_pos).normalize():f} BTC off the venue's",
        ("no split order stayed PARTIALLY_FILLED in the node while FILLED at the venue" if not stuck else
         f"{len(stuck)} split order(s) stayed PARTIALLY_FILLED in the node while FILLED at the venue")
        + ("; every split order's final status matched the venue's" if not status_off else
           f"; {len(status_off)} split order(s) ended in another status than at the venue"),
        "the node-vs-venue order state alert (TcNodeOrderStateDisagrees) "
        + ("fired during the drill" if "TcNodeOrderStateDisagrees" in fired else "did not fire during the drill"),
    ]
    evidence = {"fault": fault, "seed": SEED, "split": [int(p) for p in SPLIT.split("/")], "schedule": first.get("schedule"),
                "partial_fills": splits, "gap_ms": first["gap_ms"], "samples": samples[:100],
                "heartbeats_disagreeing": len(disagreed), "heartbeats_disagreeing_in_a_row": longest, "heartbeats_partially_filled": len(partial_seen),
                "node_fills_at_end": beat.get("fills"), "node_fill_events_at_end": beat.get("fill_events"), "venue_trades_at_end": len(trades),
                "node_position_at_end": str(node_pos), "venue_position_at_end": str(venue_pos),
                "venue_parts": venue_parts, "node_parts": node_parts,
                "node_status": {c: node_orders.get(c, {}).get("status") for c in sorted(split_ids)},
                "venue_status": {c: venue_orders.get(c, {}).get("status") for c in sorted(split_ids)},
                "stuck_partially_filled": stuck}
    evidence["alerts_fired"] = fired
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_partial_fills", "the venue fills the node's market orders in parts, seconds apart; a partial-fill or order-state alert is delivered",
              f"the venue fills the marketable orders its seed chooses (partial_fills={SPLIT}@{SEED}) in {len(SPLIT.split('/'))} parts, each its "
              "own trade and executionReport, two seconds apart",
              "TcNodeOrderPartiallyFilled or TcNodeOrderStateDisagrees delivered; whether the node's fills, position and order states "
              "matched the venue's after the last part is recorded", execute, kind="node")
