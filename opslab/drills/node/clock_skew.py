"""node_clock_skew: the venue's own clock jumps ahead of the host's (fault clock_skew, an offset drawn by its seed, switched on
over the admin API while the node trades; the host clock is never touched). Its serverTime says so, and every signed request
is timed by it: a request whose timestamp is more than its recvWindow (NautilusTrader sends 5000 ms) behind the venue's clock
is refused with Binance's -1021 "Timestamp for this request is outside of the recvWindow.", on REST (orders, account) and on
the WebSocket API alike. Detected: the venue's refusals by error code (tc_venue_rejects_total{code="-1021"}),
TcNodeRequestsOutsideRecvWindow delivered by Alertmanager. Recorded: what the node did: whether its timestamps ever moved
toward the venue's serverTime, how it treated the refused submits (retried, REJECTED), and whether it kept failing."""

from __future__ import annotations

import time
from collections import Counter

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat
from opslab.drills.node.kit import NodeLab, observation
from opslab.venue import faults as venue_faults

ALERTS = ("TcNodeRequestsOutsideRecvWindow",)
MS, SEED = 20_000, 28  # clock_skew=MS/SEED: the venue's clock random.Random(SEED)-drawn 10-20 s ahead (recorded in the result)
DETECT_TIMEOUT_S = 25.0
NODE_S = 90  # engine.node.duration_seconds: the node outlives the detection window and the watch, detection off too
WATCH_S = 12.0  # from the skew: how long the node's requests are watched for an adjustment


def execute(ctx: Context) -> Observation:
    fault = f"clock_skew={MS}/{SEED}"
    offset = venue_faults.skew_schedule(f"{MS}/{SEED}")["offset_ms"]
    with NodeLab(ctx, "node-clock-skew", duration_seconds=NODE_S) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("the node's first round trip", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 2, timeout=30)
        seq = lab.stack.last_seq()
        fills_before = (lab.heartbeat() or {}).get("fills", 0)
        since = lab.faults(fault)
        skew_wall = time.time()
        first = lab.wait_node("the venue to refuse a request with -1021", lambda: lab.fault_records("timestamps_rejected"), timeout=30)[0]
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        time.sleep(max(0.0, WATCH_S - (time.time() - skew_wall)))
        refused = lab.fault_records("timestamps_rejected")
        rejects = lab._admin("GET", "/admin/faults").get("rejects", {})
        beat = _next_beat(lab)
        lab.stop_node()
        orders = lab.output("orders").get("orders", [])
        logged = lab.log_lines(r"-1021|recvWindow|outside of the recvWindow", limit=6)
    detected = alert is not None
    leads = [r["client_lead_ms"] for r in refused if r.get("client_lead_ms") is not None]
    drift = (max(leads) - min(leads)) if leads else None
    adjusted = bool(leads) and leads[-1] > -5000  # a timestamp back inside the window: it moved toward the venue's clock
    by_request = Counter(r["request"] for r in refused)
    after = [o for o in orders if o.get("status") == "REJECTED"]
    node_rejected = beat.get("orders_rejected") or {}
    retried = any("Retrying" in line for line in logged)
    fills_after = (beat.get("fills") or 0) - fills_before
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue's clock went {offset / 1000:.3f} s ahead "
                f"(first -1021 on {first['request']})" if detected else
                f"no recvWindow notification within {DETECT_TIMEOUT_S:g} s of the venue's clock going {offset / 1000:.3f} s ahead")
    findings = [
        f"the venue refused {len(refused)} signed request(s) with -1021 in the {WATCH_S:g} s after its clock went ahead ("
        + ", ".join(f"{req} x{n}" for req, n in sorted(by_request.items())) + ")",
        ("the node's timestamps stayed on the host clock: every refused request was signed "
         f"{-max(leads) / 1000:.1f}-{-min(leads) / 1000:.1f} s behind the venue's clock; it never adjusted to the venue's serverTime"
         if leads and not adjusted else
         "the node's timestamps moved toward the venue's clock" if adjusted else "no refused request carried a readable timestamp"),
        ("NautilusTrader retried the refused submits (-1021 is in its retry set) and then " if retried else "NautilusTrader ")
        + (f"REJECTED {sum(node_rejected.values())} order(s) (by code {dict(node_rejected)}); " if node_rejected else "rejected no order; ")
        + (f"it kept failing: {fills_after} fill(s) after the skew" if fills_after <= 0 else f"{fills_after} fill(s) still came after the skew"),
    ]
    evidence = {"fault": fault, "seed": SEED, "ms": MS, "offset_ms": offset, "schedule": {"offset_ms": offset},
                "timestamps_rejected": refused[:20], "rejects_by_code": rejects, "refused_by_request": dict(by_request),
                "client_lead_ms_range": [min(leads), max(leads)] if leads else None, "client_lead_drift_ms": drift,
                "adjusted_to_server_time": adjusted, "node_orders_rejected": node_rejected, "node_orders_rejected_total": len(after),
                "node_retried": retried, "fills_after_skew": fills_after, "nautilus_log": logged}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_clock_skew", "the venue's clock runs ahead of the host's past recvWindow; the -1021 alert is delivered",
              f"the venue's own clock (serverTime and the timing check of signed requests) jumps {MS // 2000}-{MS // 1000} s ahead of "
              f"the host's (clock_skew={MS}/{SEED}, switched on while the node trades); the host clock is never touched",
              "TcNodeRequestsOutsideRecvWindow delivered (the venue's -1021 refusals by error code); whether the node adjusted to "
              "the venue's serverTime or kept failing, and what it did with the refused orders, is recorded", execute, kind="node")
