"""node_disconnect: the venue drops every WebSocket connection and refuses new ones (and REST) for a
while. Recorded: the real client's reconnect behaviour (attempts the venue saw, time until market
data flows again, the data gap); detected: the market-data gap alert is delivered."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeMarketDataStale",)
OUTAGE_S = 8.0


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-disconnect") as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("market data", lambda: (lab.heartbeat() or {}).get("seconds_since_market_data") is not None)
        before = lab.venue_stats()
        time.sleep(1.2)  # the venue writes its counters at most once a second
        ws_before = lab.venue_counters().get("ws", {})
        seq = lab.stack.last_seq()
        t0 = lab.faults("drop")  # the injected fault: every connection closed, every new one refused
        alert = lab.detect(ALERTS, t0, timeout=OUTAGE_S, after_seq=seq)
        during = lab.heartbeats()
        lab.wait_node("the outage to end", lambda: time.monotonic() - t0 >= OUTAGE_S, timeout=OUTAGE_S + 1)
        refused = lab.venue_stats().get("dropped", 0) - before.get("dropped", 0)
        t1 = lab.faults()
        if alert is None:
            alert = lab.detect(ALERTS, t0, timeout=10, after_seq=seq)

        def flowing() -> float | None:
            beat = lab.heartbeat() or {}
            since = beat.get("seconds_since_market_data")
            return time.monotonic() - t1 if since is not None and since < 1.0 and beat.get("uptime_seconds", 0) > 0 else None

        try:
            resumed = round(lab.wait_node("market data after the outage", lambda: flowing(), timeout=30) or 0, 3)
        except TimeoutError:
            resumed = None
        beats = lab.heartbeats()
        lab.stop_node()
        life = lab.lifecycle() or {}
        time.sleep(1.2)  # the venue's counters, complete: every reconnection the node made happened before it stopped
        ws_after = lab.venue_counters().get("ws", {})
    # NautilusTrader 1.221.0 logs no reconnect line at INFO: the venue's own counters say what the clients did
    reconnects = ws_after.get("connections_opened", 0) - ws_before.get("connections_opened", 0)
    resubscribed = ws_after.get("subscribe_commands", 0) - ws_before.get("subscribe_commands", 0)
    gap = max((b.get("seconds_since_market_data") or 0 for b in beats), default=0)
    connected_during = sorted({(b["clients_connected"]["data"], b["clients_connected"]["exec"]) for b in during[-int(OUTAGE_S * 2):]})
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue dropped every connection" if detected else
                "no market-data notification during or after the outage")
    findings = [f"during the {OUTAGE_S:g} s outage the venue refused {refused} connection attempt(s) (REST and WebSocket); the node's clients "
                f"reported connected (data, exec) = {connected_during} in its heartbeats",
                f"market data reached the node again {resumed} s after the venue came back; the longest gap a heartbeat saw was {gap:g} s"
                if resumed is not None else "market data did NOT reach the node again within 30 s after the venue came back",
                f"its clients opened {reconnects} new WebSocket connection(s) and sent {resubscribed} SUBSCRIBE command(s) after the drop "
                f"(the venue's counters; its log says nothing of it at INFO); the node ended {life.get('state')!r} ({life.get('stop_reason')})"]
    evidence = {"outage_seconds": OUTAGE_S, "attempts_refused": refused, "clients_connected_during": [list(c) for c in connected_during],
                "seconds_to_market_data_after": resumed, "max_seconds_since_market_data": gap, "ws_connections_reopened": reconnects,
                "resubscribe_commands": resubscribed,
                "final_state": life.get("state"), "stop_reason": life.get("stop_reason")}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_disconnect", "the venue drops every connection for a while; the data-gap alert is delivered, the reconnect recorded",
              f"the venue closes every WebSocket and refuses REST and new connections for {OUTAGE_S:g} s (fault drop)",
              "TcNodeMarketDataStale delivered; reconnect attempts, time to market data and the gap are recorded", execute, kind="node")
