"""node_kill_switch: the kill switch engaged during a live run. Measured: time until the node is
HALTED and until the venue has cancelled every open order; released: trading resumes (the incident
class of nautilus_trader#1081: a halt that must reach the venue, and a way back)."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcKillSwitchEngaged",)


def _halted(lab: NodeLab) -> bool:
    return (lab.lifecycle() or {}).get("state") == "halted"


def execute(ctx: Context) -> Observation:
    timeline: dict[str, float | None] = {"halted": None, "venue_cancelled_all": None, "resumed": None, "first_order_after_release": None}
    with NodeLab(ctx, "node-kill-switch") as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("a resting order at the venue", lambda: lab.venue_open_orders(), timeout=20)
        open_before = [o["clientOrderId"] for o in lab.venue_open_orders()]
        seq = lab.stack.last_seq()
        t0 = time.monotonic()  # times count from the command's start (a tc process takes ~0.4 s to start)
        engaged = ctx.tc("killswitch", "engage", "--reason", "node drill")  # the injected fault: an emergency stop mid-run
        lab.wait_node("the node to halt", lambda: _halted(lab), timeout=15)
        timeline["halted"] = round(time.monotonic() - t0, 3)
        lab.wait_node("the venue to cancel every open order", lambda: not lab.venue_open_orders(), timeout=15)
        timeline["venue_cancelled_all"] = round(time.monotonic() - t0, 3)
        alert = lab.detect(ALERTS, t0, timeout=20, after_seq=seq)
        orders_at_release = len(lab.venue_state()["orders"])
        t1 = time.monotonic()
        released = ctx.tc("killswitch", "release", "--reason", "node drill done")
        lab.wait_node("the node to resume", lambda: (lab.lifecycle() or {}).get("state") == "running", timeout=15)
        timeline["resumed"] = round(time.monotonic() - t1, 3)
        try:
            lab.wait_node("a new order after the release", lambda: len(lab.venue_state()["orders"]) > orders_at_release, timeout=20)
            timeline["first_order_after_release"] = round(time.monotonic() - t1, 3)
        except TimeoutError:
            pass
        life = lab.lifecycle() or {}
        exit_code = lab.stop_node()
    cancelled = sorted(set(open_before) & set(life.get("cancelled_at_halt", [])))
    detected = alert is not None and engaged.code == 0 and timeline["venue_cancelled_all"] is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the engage; node HALTED after {timeline['halted']} s, "
                f"venue had no open order after {timeline['venue_cancelled_all']} s" if detected else "no kill-switch notification delivered")
    findings = [f"HALTED {timeline['halted']} s after `tc killswitch engage` started (engage wakes the node through its wake socket and "
                "returns once it acknowledged HALTED; the ops actor's poll every 0.25 s is the fallback); every open order "
                f"({len(open_before)}) cancelled at the venue after {timeline['venue_cancelled_all']} s: NautilusTrader's HALTED denies new "
                "orders but cancels nothing by itself, the actor's "
                "cancel_all_orders does",
                f"after release the node was running again in {timeline['resumed']} s and placed its next order after "
                f"{timeline['first_order_after_release']} s" if timeline["first_order_after_release"] is not None else
                f"after release the node was running again in {timeline['resumed']} s but placed no new order within 20 s"]
    evidence = {"timeline_seconds": timeline, "open_orders_before": open_before, "cancelled_at_halt": cancelled, "halts": life.get("halts"),
                "engage_exit_code": engaged.code, "release_exit_code": released.code, "node_exit_code": exit_code}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_kill_switch", "the kill switch engaged mid-run halts the node and cancels at the venue; release resumes",
              "`tc killswitch engage` while the live node runs with an order resting at the venue",
              "TcKillSwitchEngaged delivered; the node HALTED and the venue holds no open order; after release the node runs again",
              execute, kind="node")
