"""node_stale_book_connected: the WebSocket stays open and keeps answering pings, but depth and trade
updates stop (nautilus_trader#4298). The node's "seconds since market data" grows and the stale-data
alert is delivered while its data client still reports connected. The node runs with the automatic soft halt
(engine.node.auto_halt, market data and book at AUTO_HALT_S): the drill records when it moved itself to REDUCING
after the updates stopped and back to ACTIVE after they resumed, and that the kill switch's history, which holds
both, verifies."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation, soft_halt_finding, soft_halt_times

ALERTS = ("TcNodeMarketDataStale",)
AUTO_HALT_S = 2  # engine.node.auto_halt market_data_seconds and book_seconds (the stale alert's own bound is 3 s)


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-stale-book", auto_halt={"market_data_seconds": AUTO_HALT_S, "book_seconds": AUTO_HALT_S}) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("market data", lambda: (lab.heartbeat() or {}).get("seconds_since_market_data") is not None)
        time.sleep(1.2)  # the venue writes its counters at most once a second
        ws_before = lab.venue_counters().get("ws", {})
        seq = lab.stack.last_seq()
        went_wall = time.time()
        t0 = lab.faults("silent_market")  # the injected fault: connections stay up, market updates stop
        alert = lab.detect(ALERTS, t0, timeout=25, after_seq=seq)
        beat = lab.heartbeat() or {}
        time.sleep(1.2)  # the venue writes its counters at most once a second
        counters = lab.venue_counters()
        back_wall = time.time()
        lab.faults()
        t1 = time.monotonic()
        try:
            lab.wait_node("market data again", lambda: ((lab.heartbeat() or {}).get("seconds_since_market_data") or 99) < 1.0, timeout=15)
            back = round(time.monotonic() - t1, 3)
        except TimeoutError:
            back = None
        try:  # the soft halt's release follows the fresh data within its poll
            lab.wait_node("the node back to ACTIVE", lambda: (lab.lifecycle() or {}).get("state") == "running", timeout=5)
        except TimeoutError:
            pass
        lab.stop_node()
        halts = lab.soft_halts()
    times = soft_halt_times(halts, went_wall, back_wall)
    connected = beat.get("clients_connected", {})
    ws_after = counters.get("ws", {})
    opened_before, opened_after = ws_before.get("connections_opened"), ws_after.get("connections_opened")
    pongs = (ws_after.get("pongs_received") or 0) - (ws_before.get("pongs_received") or 0)
    suppressed = counters.get("market_messages", {}).get("suppressed")
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after market updates stopped; the node's data client reported "
                f"connected={connected.get('data')}" if detected else "no stale-data notification within 25 s")
    findings = [f"with the socket open and market updates stopped, NautilusTrader's Binance data client kept reporting connected "
                f"(data={connected.get('data')}) and opened no new connection (venue WebSocket connections opened: {opened_before} before, "
                f"{opened_after} at detection) while it answered {pongs} venue ping(s): nothing in the engine notices a silent feed; "
                f"only the age of the last update does ({beat.get('seconds_since_market_data')} s at detection)",
                f"updates reached the node again {back} s after the venue resumed them, on the same connection" if back is not None else
                "updates did NOT reach the node within 15 s after the venue resumed them",
                soft_halt_finding(halts, times, "the updates stopped", "they resumed")]
    evidence = {"seconds_since_market_data_at_detection": beat.get("seconds_since_market_data"), "clients_connected_at_detection": connected,
                "ws_connections_opened_before": opened_before, "ws_connections_opened_at_detection": opened_after,
                "pongs_during_silence": pongs, "market_messages_suppressed": suppressed,
                "seconds_to_market_data_after": back, "market_data_stale_seconds": 3, "trading_state_at_detection": beat.get("trading_state"),
                "auto_halt": {**times, "bounds": halts["bounds"], "history": halts["history"], "unrecorded": halts["unrecorded"],
                              "verify_problems": halts["verify_problems"]}}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_stale_book_connected", "market updates stop on an open socket; the stale-data alert is delivered while connected",
              "the venue keeps every WebSocket open (pings answered) but stops trade, kline, depth and book-ticker updates (fault silent_market)",
              "TcNodeMarketDataStale delivered while the node's data client still reports connected", execute, kind="node")
