"""node_crash: the live node dies silently (SIGKILL: no stop, no last words); the heartbeat-stale
alert must reach the receiver (what freqtrade users ask for in freqtrade#9675)."""

from __future__ import annotations

import signal
import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeHeartbeatStale",)


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-crash") as lab:
        assert lab.start_node()
        lab.wait_running()
        lab.wait_node("three heartbeats", lambda: (lab.heartbeat() or {}).get("seq", 0) >= 3)
        before = lab.heartbeat() or {}
        seq = lab.stack.last_seq()
        lab.node.send_signal(signal.SIGKILL)  # the injected fault
        killed = time.monotonic()
        lab.node.wait()
        alert = lab.detect(ALERTS, killed, timeout=40, after_seq=seq)
        life = lab.lifecycle() or {}
        after = lab.heartbeat() or {}
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the SIGKILL" if detected else
                "no heartbeat-stale notification within 40 s of the SIGKILL")
    findings = [f"after a SIGKILL the node leaves its lifecycle at {life.get('state')!r} and writes nothing more (last heartbeat seq "
                f"{after.get('seq')}, {after.get('open_orders')} open order(s) left unwatched at the venue): only the missing heartbeats "
                "tell an operator it is gone"]
    evidence = {"heartbeats_before_kill": before.get("seq"), "last_heartbeat_seq": after.get("seq"), "lifecycle_after_kill": life.get("state"),
                "node_exit_code": -signal.SIGKILL, "heartbeat_seconds": 0.5}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_crash", "the live node dies silently; the heartbeat-stale alert is delivered",
              "SIGKILL to the running `tc run node` process",
              "TcNodeHeartbeatStale delivered by Alertmanager to the receiver", execute, kind="node")
