"""node_half_open: every WebSocket connection of the node goes half-open (fault half_open), as when the venue's side vanished
without a FIN: the connections stay open, nothing arrives on them any more (market data, user data, the venue's pings) and
nothing the node sends on them is answered (its pings get no pong), while new connections and REST are served as ever. A
client that checks its connections' liveness reconnects and recovers; one that waits for a close waits forever.
Detected: the market-data stale alert, delivered by Alertmanager. Recorded: whether NautilusTrader's clients noticed (new
connections at the venue, market data flowing again) within WATCH_S, what its clients said of their connection meanwhile,
and whether its fills kept up with the venue's trades (the user data stream is on a half-open connection too)."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeMarketDataStale",)
WATCH_S = 20.0  # from the fault: how long the node is given to notice and reconnect
DETECT_TIMEOUT_S = 25.0


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-half-open", duration_seconds=60) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("market data", lambda: (lab.heartbeat() or {}).get("seconds_since_market_data") is not None)
        time.sleep(1.2)  # the venue writes its counters at most once a second
        ws_before = lab.venue_counters().get("ws", {})
        trades_before = len(lab.venue_state()["trades"])
        seq = lab.stack.last_seq()
        t0 = lab.faults("half_open")
        lab.faults()  # off again: it acted on the connections open at the switch; every new connection is served as ever
        alert = lab.detect(ALERTS, t0, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        beat_at_detection = lab.heartbeat() or {}

        def flowing() -> float | None:
            since = (lab.heartbeat() or {}).get("seconds_since_market_data")
            return round(time.monotonic() - t0, 3) if since is not None and since < 1.0 and time.monotonic() - t0 > 2.0 else None

        try:
            back = lab.wait_node("market data on a new connection", flowing, timeout=max(0.1, WATCH_S - (time.monotonic() - t0)))
        except TimeoutError:
            back = None
        beats = [b for b in lab.heartbeats() if b.get("uptime_seconds", 0) > 0]
        trades = lab.venue_state()["trades"]
        beat = lab.heartbeat() or {}
        time.sleep(1.2)
        ws_after = lab.venue_counters().get("ws", {})
        lab.stop_node()
    opened = ws_after.get("connections_opened", 0) - ws_before.get("connections_opened", 0)
    half_open = ws_after.get("half_open", 0)
    connected = beat_at_detection.get("clients_connected", {})
    gap = max((b.get("seconds_since_market_data") or 0 for b in beats), default=0)
    behind = len(trades) - (beat.get("fills") or 0)
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the node's {half_open} connection(s) went half-open; its data "
                f"client reported connected={connected.get('data')}" if detected else
                f"no market-data notification within {DETECT_TIMEOUT_S:g} s of the node's connections going half-open")
    findings = [
        f"the venue left {half_open} open WebSocket connection(s) of the node half-open (no data, no answers, no pings, never closed); "
        f"at detection its clients reported connected (data={connected.get('data')}, exec={connected.get('exec')})",
        (f"NautilusTrader noticed: its clients opened {opened} new connection(s) and market data flowed again {back:g} s after the "
         f"fault (the longest gap a heartbeat saw: {gap:g} s)" if back is not None else
         f"NautilusTrader did NOT notice within {WATCH_S:g} s: its clients opened {opened} new connection(s) and market data did not "
         f"flow again (the longest gap a heartbeat saw: {gap:g} s); nothing but the age of the last update tells"),
        (f"the venue made {len(trades) - trades_before} trade(s) of the node's orders meanwhile; the node's fills were {behind} behind "
         f"the venue's trades at the end (its user data stream was half-open too)" if len(trades) > trades_before else
         "the node placed no order meanwhile (its strategy trades on bars, and none reached it)"),
    ]
    evidence = {"half_open_connections": half_open, "ws_connections_opened_after": opened, "clients_connected_at_detection": connected,
                "seconds_to_market_data_after": back, "max_seconds_since_market_data": gap, "watch_seconds": WATCH_S,
                "venue_trades_during": len(trades) - trades_before, "node_fills_behind_at_end": behind}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_half_open", "the node's connections go half-open (silent both ways, never closed); the data-stale alert is delivered",
              "every WebSocket connection open at the switch goes half-open: never closed, nothing sent on it again (market data, user data, "
              "pings) and nothing sent on it answered (fault half_open); new connections and REST are served",
              "TcNodeMarketDataStale delivered; whether NautilusTrader noticed the dead connections and reconnected, and how fast, is "
              "recorded", execute, kind="node")
