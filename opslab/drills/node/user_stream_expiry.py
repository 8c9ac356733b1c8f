"""node_user_stream_expiry: the account's user data stream ends while market data keeps flowing (fault user_stream_expiry, the
user-data event it ends before drawn by its seed, switched on over the admin API once the node trades). On the WebSocket API
profile (NautilusTrader >= 1.223 signs in with session.logon and userDataStream.subscribe) the subscription gets Binance's
eventStreamTerminated and ends, the session staying logged on; on the listenKey profile (1.221) the stream gets
listenKeyExpired and the key expires. The venue keeps filling the node's orders; their executionReports reach no ended stream.
Detected: the venue's ended user streams (TcNodeUserStreamEnded) or the node's fills behind the venue's trades
(TcNodeFillsBehindVenue), delivered by Alertmanager. Recorded: whether NautilusTrader noticed, subscribed again (and how fast),
how many fills it missed and whether reconciliation brought its fills and position back to the venue's, and how fast.
The node runs with the automatic soft halt on its user stream (engine.node.auto_halt user_stream_seconds AUTO_HALT_S): the
drill records when it moved itself to REDUCING after the end and back to ACTIVE after a new subscription answered, and that
the kill switch's history, which holds both, verifies."""

from __future__ import annotations

import re
import time

from opslab import clock
from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _quiet_read, _venue_position
from opslab.drills.node.kit import NodeLab, observation, soft_halt_finding, soft_halt_times

ALERTS = ("TcNodeUserStreamEnded", "TcNodeFillsBehindVenue")
N, SEED = 3, 28  # user_stream_expiry=N/SEED: ends before one of the next N user-data events, drawn by random.Random(SEED)
DETECT_TIMEOUT_S = 20.0
WATCH_S = 10.0  # from the end: how long the node's resubscription and its fills against the venue's trades are watched
NODE_S = 90  # engine.node.duration_seconds: the node outlives the detection window and the watch, detection off too
AUTO_HALT_S = 3  # engine.node.auto_halt user_stream_seconds: an order unanswered on the stream this long
NOTICED = r"eventStreamTerminated|[Rr]esubscrib|[Ll]isten key expired|listenKeyExpired|NOT active"


def execute(ctx: Context) -> Observation:
    fault = f"user_stream_expiry={N}/{SEED}"
    with NodeLab(ctx, "node-user-stream-expiry", duration_seconds=NODE_S, auto_halt={"user_stream_seconds": AUTO_HALT_S}) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("the node's first round trip", lambda: (lab.heartbeat() or {}).get("fills", 0) >= 2, timeout=30)
        seq = lab.stack.last_seq()
        lab.faults(fault)
        end = lab.wait_node("the venue to end the user data stream", lambda: lab.fault_records("user_streams_ended"), timeout=30)[0]
        end_wall = end["at_ms"] / 1000
        since = time.monotonic() - max(0.0, time.time() - end_wall)
        resubscribed_s = None
        behind_max, healed_s, alert = 0, None, None
        deadline = end_wall + max(WATCH_S, DETECT_TIMEOUT_S)
        while time.time() < deadline:  # the alert, the venue's user streams and the node's fills, side by side
            if alert is None:
                alert = lab.detect(ALERTS, since, timeout=0.3, after_seq=seq)
            if resubscribed_s is None and lab._admin("GET", "/admin/faults").get("user_streams_active", 0) > 0:
                resubscribed_s = round(time.time() - end_wall, 3)
            behind = _quiet_behind(lab)
            if behind is not None and behind > 0:
                behind_max, healed_s = max(behind_max, behind), None
            elif behind == 0 and behind_max and healed_s is None:
                healed_s = round(time.time() - end_wall, 3)
            if alert is not None and time.time() - end_wall >= WATCH_S:
                break
        trades, beat = _quiet_read(lab)  # the node's fills and the venue's trades of one moment
        stop_wall = time.time()  # a stopping node logs out: its own eventStreamTerminated is not the incident's
        lab.stop_node()
        logged = [line for line in lab.log_lines(NOTICED, limit=12) if _at(line) is None or _at(line) < stop_wall]
        resubscribed_at = [t for t in lab.log_times(r"Resubscribed after|Re-authenticated and resubscribed") if t >= end_wall - 1]
        inferred = [t for t in lab.log_times(r"Generated inferred OrderFilled") if t >= end_wall]
        reconciled = lab.log_lines(r"Generated inferred OrderFilled|(?i:mass status)", limit=4)
        halts = lab.soft_halts()
    if resubscribed_at:  # the node's own log: to the millisecond, rather than the venue's poll
        resubscribed_s = round(max(0.0, min(resubscribed_at) - end_wall), 3)
    times = soft_halt_times(halts, end_wall, end_wall + resubscribed_s if resubscribed_s is not None else None)
    detected = alert is not None
    said = _said(logged)
    end_behind = len(trades) - (beat.get("fills") or 0)
    node_pos, venue_pos = _node_position(beat), _venue_position(trades)
    how = "eventStreamTerminated" if end["subscriptions"] else "listenKeyExpired"
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue ended the user data stream ({how}, before an "
                f"{end['event_type']} event)" if detected else
                f"no user-stream or fills-behind notification within {DETECT_TIMEOUT_S:g} s of the venue ending the user data stream ({how})")
    findings = [
        f"the venue ended the user data stream with {how} ("
        + (f"{end['subscriptions']} WebSocket API subscription(s)" if end["subscriptions"] else f"{end['listen_keys']} listen key(s)")
        + "); NautilusTrader " + (", ".join(said) if said else "logged nothing about it that the drill recognizes"),
        (f"it subscribed again {resubscribed_s:g} s after the end" if resubscribed_s is not None else
         f"it did NOT subscribe again within {WATCH_S:g} s: no user data stream reached it while the venue kept filling its orders"),
        (f"its fills fell up to {behind_max} behind the venue's trades; "
         + (f"they matched again {healed_s:g} s after the end" if healed_s is not None else f"{end_behind} behind at the end")
         + (f" ({len(inferred)} fill(s) inferred by its in-flight order check)" if inferred else "")
         + f"; its position at the end {abs(node_pos - venue_pos).normalize():f} BTC off the venue's"
         if behind_max else "its fills matched the venue's trades at every quiet read (none within a second of a trade): the reports "
         "sent while it had no subscription were made good before the first one"),
        soft_halt_finding(halts, times, "the end", "it subscribed again"),
    ]
    evidence = {"fault": fault, "seed": SEED, "n": N, "schedule": [end["event"]], "user_streams_ended": [end],
                "ended_with": how, "resubscribed_seconds": resubscribed_s, "fills_behind_max": behind_max,
                "healed_seconds": healed_s, "fills_inferred": len(inferred), "nautilus_said": said,
                "node_fills_at_end": beat.get("fills"), "venue_trades_at_end": len(trades), "node_position_at_end": str(node_pos),
                "venue_position_at_end": str(venue_pos), "nautilus_log": logged + reconciled,
                "auto_halt": {**times, "bounds": halts["bounds"], "history": halts["history"], "unrecorded": halts["unrecorded"],
                              "verify_problems": halts["verify_problems"]}}
    return observation(detected, observed, alert, evidence, findings)


def _quiet_behind(lab: NodeLab) -> int | None:
    """The venue's trades minus the node's fills in a heartbeat written after them, read while no trade is in flight (none
    newer than a second, none made between the reads); None when a trade was in flight."""
    trades = lab.venue_state()["trades"]
    if trades and time.time() - trades[-1]["time"] / 1000 < 1.0:
        return None
    beat = _next_beat(lab)
    return len(trades) - (beat.get("fills") or 0) if len(lab.venue_state()["trades"]) == len(trades) else None


def _at(line: str) -> float | None:
    """The Unix time a NautilusTrader log line starts with (RFC 3339, nanoseconds), None when it has none."""
    try:
        return clock.epoch_seconds_fraction(line[:26] + "Z")
    except ValueError:
        return None


def _said(lines: list[str]) -> list[str]:
    """What NautilusTrader's log said about the end, in words that do not change with ids, keys or times."""
    said = []
    if any("Received eventStreamTerminated" in line for line in lines):
        said.append("warned it received eventStreamTerminated")
    if any("Invalid enum value 'listenKeyExpired'" in line for line in lines):
        said.append("failed to decode listenKeyExpired (ValidationError: an event type it does not know) and went on with the dead key")
    elif any("Listen key expired" in line for line in lines):
        said.append("warned the listen key expired")
    if any(re.search(r"Resubscribed after|Re-authenticated and resubscribed", line) for line in lines):
        said.append("resubscribed")
    if any("NOT active" in line for line in lines):
        said.append("logged that the user data stream is NOT active")
    return said


DRILL = Drill("node_user_stream_expiry", "the venue ends the user data stream while market data flows; an alert is delivered",
              f"once the node trades, the venue ends its user data stream before one of the next {N} user-data events (seed {SEED}, "
              f"user_stream_expiry={N}/{SEED}): eventStreamTerminated on the WebSocket API, listenKeyExpired on a listen key; fills go on",
              "TcNodeUserStreamEnded or TcNodeFillsBehindVenue delivered; whether NautilusTrader noticed and subscribed again, how many "
              "fills it missed and whether reconciliation healed them, and how fast, is recorded", execute, kind="node")
