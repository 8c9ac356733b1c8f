"""node_fill_lost: the venue executes one of the node's orders and keeps the trade in its record (myTrades, order status
FILLED) but never sends that fill's execution report on the user data stream (fault fill_lost, a seeded schedule; the
listenKey stream or the WebSocket API subscription, whichever the node's NautilusTrader speaks). Detected: the venue's
trades run ahead of the node's fills, TcNodeFillsBehindVenue is delivered. Recorded: whether NautilusTrader's continuous
reconciliation (LiveExecEngineConfig.open_check_interval_secs, on for this node) healed the lost fill, how fast, and the
node's position against the venue's."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeFillsBehindVenue",)
N, SEED = 2, 28  # fill_lost=N/SEED: one of the node's first N fills, drawn by random.Random(SEED) (recorded in the result)
OPEN_CHECK_S = 1.0  # engine.node.open_check_seconds: NautilusTrader's continuous reconciliation every second
# engine.node.open_check_delay_seconds: its first check 20 s after start, not NautilusTrader's 10. The loss is one of the
# first two fills (about 6 s into the replay); on a busy machine (drills run 3 at once) the node can take 5 s more to
# start, and a loss after the first check is healed within a second, before any alert can hold: the delay keeps the
# loss before the first check, so the drill detects on a slow machine too, and records the heal after it.
OPEN_CHECK_DELAY_S = 20.0
HEAL_TIMEOUT_S = 35.0  # from the loss: the first check comes OPEN_CHECK_DELAY_S after start
INFERRED = r"Generated inferred OrderFilled"


def _venue_position(trades: list[dict[str, Any]]) -> Decimal:
    """The account's net base quantity from the venue's trades (buys minus sells)."""
    return sum((Decimal(t["qty"]) * (1 if t["isBuyer"] else -1) for t in trades), Decimal(0)).normalize() + 0


def _node_position(beat: dict[str, Any]) -> Decimal:
    pos = beat.get("position") or {}
    qty = Decimal(pos.get("quantity") or "0")
    return (-qty if pos.get("side") == "SHORT" else qty).normalize() + 0


def _next_beat(lab: NodeLab) -> dict[str, Any]:
    """The first heartbeat written after now: it holds every fill whose report reached the node before it (in milliseconds)."""
    seq = (lab.heartbeat() or {}).get("seq", 0)
    return lab.wait_node("the next heartbeat", lambda: (b := lab.heartbeat() or {}).get("seq", 0) > seq and b, timeout=10)


def _quiet_read(lab: NodeLab, timeout: float = 10.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The venue's trades and the node's next heartbeat, read while no trade is in flight (none newer than a second, none
    made between the two reads), so the heartbeat's fills and the trades describe the same moment; the last pair read
    when the node trades too often for that within TIMEOUT."""
    end = time.monotonic() + timeout
    while True:
        trades = lab.venue_state()["trades"]
        quiet = not trades or time.time() - trades[-1]["time"] / 1000 >= 1.0
        beat = _next_beat(lab) if quiet or time.monotonic() >= end else None
        if beat is not None and (len(lab.venue_state()["trades"]) == len(trades) or time.monotonic() >= end):
            return trades, beat
        time.sleep(0.2)


def _healed(lab: NodeLab) -> float | None:
    """When (Unix seconds) a heartbeat written after the venue's trades were counted holds a fill for each of them, no
    trade being newer than a second (its report may still be on its way) and none made meanwhile; None when not."""
    trades = lab.venue_state()["trades"]
    if trades and time.time() - trades[-1]["time"] / 1000 < 1.0:
        return None
    beat = _next_beat(lab)
    at = time.time()
    return at if len(lab.venue_state()["trades"]) == len(trades) and beat.get("fills", 0) >= len(trades) else None


def execute(ctx: Context) -> Observation:
    fault = f"fill_lost={N}/{SEED}"
    with NodeLab(ctx, "node-fill-lost", venue_faults=(fault,), open_check_seconds=OPEN_CHECK_S, open_check_delay_seconds=OPEN_CHECK_DELAY_S) as lab:
        lab.start_node()
        lab.wait_running()
        seq = lab.stack.last_seq()
        lost = lab.wait_node("the venue to withhold a fill's report", lab.fills_lost, timeout=20)[0]
        lost_wall = lost["at_ms"] / 1000
        since = time.monotonic() - max(0.0, time.time() - lost_wall)  # the loss, on the monotonic clock
        alert = lab.detect(ALERTS, since, timeout=25, after_seq=seq)
        trades_at_detection, beat_at_detection = _quiet_read(lab)  # the node's fills and the venue's trades of one moment

        try:
            healed_at = lab.wait_node("the node to hold the lost fill", lambda: _healed(lab), timeout=max(1.0, HEAL_TIMEOUT_S - (time.time() - lost_wall)))
        except TimeoutError:
            healed_at = None
        trades_end = lab.venue_state()["trades"]
        beat_end = lab.heartbeat() or {}
        lab.stop_node()  # NautilusTrader's log file is complete once the node stopped
        node_fills = [f for f in lab.output("fills").get("fills", []) if f.get("client_order_id") == lost["client_order_id"]]
        cid = re.escape(lost["client_order_id"])
        reconciled = lab.log_lines(rf"(?i)(reconcil|inferred|discrepanc|mismatch).*{cid}|{cid}.*(?i:reconcil|inferred|discrepanc|mismatch)", limit=5)
        inferred_at = [t for t in lab.log_times(rf"{INFERRED}.*{cid}") if t >= lost_wall]  # 1.231 may not have flushed its log file
    heal_s = None
    if inferred_at:
        heal_s = round(min(inferred_at) - lost_wall, 3)
    elif healed_at is not None:  # seen in a heartbeat: to within the heartbeat interval
        heal_s = round(healed_at - lost_wall, 3)
    detected = alert is not None
    node_pos, venue_pos = _node_position(beat_at_detection), _venue_position(trades_at_detection)
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue withheld the report of fill {lost['fill']} "
                f"(trade {lost['trade_id']}, order {lost['client_order_id']}); node fills {beat_at_detection.get('fills')}, "
                f"venue trades {len(trades_at_detection)}" if detected else
                f"no fills-behind-venue notification within 25 s of the lost fill (trade {lost['trade_id']}, order {lost['client_order_id']})")
    trade_ids = sorted({str(f.get("trade_id")) for f in node_fills})
    synthetic = bool(node_fills) and str(lost["trade_id"]) not in trade_ids
    # no trade id in the words: the matrix compares findings across engines with only numbers set aside (ids are evidence)
    how = ("an inferred fill from the venue's order status, under a trade id of its own, not the venue's" if synthetic
           else "the venue's own fill, its trade id" if node_fills else "its fills caught up with the venue's trades")
    findings = [
        f"with continuous reconciliation on (open_check_interval_secs={OPEN_CHECK_S:g}, open_check_open_only=False, first check "
        f"{OPEN_CHECK_DELAY_S:g} s after start) NautilusTrader "
        + (f"healed the lost fill {heal_s} s after the venue withheld its report: {how}" if heal_s is not None else
           f"did NOT heal the lost fill within {HEAL_TIMEOUT_S:g} s: the order stayed open in its cache while the venue had it FILLED"),
        # positions by their difference only: a sign or a side in the words would differ with the alert's timing, not the engine
        f"{'when the alert arrived' if detected else 'when the wait for the alert ended'} the node's position was "
        f"{abs(node_pos - venue_pos).normalize():f} BTC off the venue's (node fills {beat_at_detection.get('fills')}, "
        f"venue trades {len(trades_at_detection)}); "
        f"at the end {abs(_node_position(beat_end) - _venue_position(trades_end)).normalize():f} BTC off",
    ]
    evidence = {"fault": fault, "seed": SEED, "n": N, "schedule": [lost["fill"]], "fills_lost": [lost],
                "open_check_interval_secs": OPEN_CHECK_S, "reconciliation_startup_delay_secs": OPEN_CHECK_DELAY_S,
                "node_fills_at_detection": beat_at_detection.get("fills"),
                "venue_trades_at_detection": len(trades_at_detection), "node_position_at_detection": str(node_pos),
                "venue_position_at_detection": str(venue_pos), "healed": heal_s is not None, "seconds_to_heal": heal_s,
                "healed_by_inferred_fill": synthetic, "node_trade_ids_of_lost_order": trade_ids,
                "heal_time_from": "log" if inferred_at else "heartbeat" if healed_at is not None else None,
                "node_position_at_end": str(_node_position(beat_end)), "venue_position_at_end": str(_venue_position(trades_end)),
                "node_fills_at_end": beat_end.get("fills"),
                "venue_trades_at_end": len(trades_end), "nautilus_log": reconciled}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_fill_lost", "the venue fills an order but its execution report never reaches the node; the fills-behind alert is delivered",
              f"the venue executes one of the node's first {N} fills (seed {SEED}) and keeps the trade, but withholds its executionReport "
              f"from the user data stream (fault fill_lost={N}/{SEED})",
              "TcNodeFillsBehindVenue delivered (the venue's trades ahead of the node's fills); whether and how fast continuous "
              "reconciliation healed the fill is recorded", execute, kind="node")
