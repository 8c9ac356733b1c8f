"""node_rate_limited_startup: the venue's REST answers 429 with Retry-After during the node's startup
reconciliation, then 418 (an IP ban, as Binance does) when the client keeps going (nautilus_trader#780).
Recorded: what the node did; detected: from the venue's own request/limit counters, exported as
metrics (TcVenueRateLimited / TcVenueBanned delivered)."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcVenueRateLimited", "TcVenueBanned")
LIMIT = "rate_limit=40/5"  # request weight 40 per 5 s: the startup's account, orders and trades queries need about 100
LIMITED = r"(?i)(\b(429|418)\b|too many requests|banned|-1003)"  # whole numbers: a log line's nanosecond stamp holds digit runs


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-rate-limited", venue_faults=(LIMIT,)) as lab:
        seq = lab.stack.last_seq()
        t0 = time.monotonic()
        lab.start_node()  # the fault is on from the first request
        alert = lab.detect(ALERTS, t0, timeout=30, after_seq=seq)
        life = lab.lifecycle() or {}
        limited = lab.venue_stats()
        running_under_limit = life.get("state") in ("running", "halted")
        lab.faults()  # the limit lifts: does the node come up now, or did it give up?
        t1 = time.monotonic()
        try:
            lab.wait_node("the node to run once the limit lifted", lambda: (lab.lifecycle() or {}).get("state") == "running", timeout=25)
            came_up = round(time.monotonic() - t1, 3)
        except (TimeoutError, RuntimeError):
            came_up = None
        final = lab.lifecycle() or {}
        lab.stop_node()
        log = lab.log_lines(LIMITED, limit=50)
    throttled, banned = limited.get("throttled", 0), limited.get("banned", 0)
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the node started against a {LIMIT} budget" if detected else
                "no rate-limit notification within 30 s")
    findings = [f"under a {LIMIT} budget the venue answered {throttled} request(s) 429 and {banned} request(s) 418 while the node started; "
                f"{len(log)} line(s) of its log mention it (first: {log[0][:160] if log else '-'})",
                f"the node {'reached running under the limit' if running_under_limit else 'did not reach running under the limit'} "
                f"(lifecycle {life.get('state')!r}); after the limit lifted it "
                + (f"was running {came_up} s later" if came_up is not None else f"did not come up (lifecycle {final.get('state')!r}, "
                   f"{final.get('stop_reason')})")]
    evidence = {"fault": LIMIT, "throttled_429": throttled, "banned_418": banned, "state_under_limit": life.get("state"),
                "seconds_to_running_after_limit_lifted": came_up, "final_state": final.get("state"), "stop_reason": final.get("stop_reason"),
                "log_examples": log[:3]}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_rate_limited_startup", "429 then 418 answers during the node's startup; the venue's limit counters raise the alert",
              f"the venue enforces a tight request-weight budget ({LIMIT}) from the node's first request: 429 with Retry-After, 418 when ignored",
              "TcVenueRateLimited or TcVenueBanned delivered from the venue's own counters; what the node did is recorded", execute, kind="node")
