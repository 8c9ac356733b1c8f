"""node_duplicate_reports: the venue sends the executionReport of one of the node's fills twice, the same message both times
(fault duplicate_reports, a seeded schedule; the listenKey stream or the WebSocket API subscription, whichever the node's
NautilusTrader speaks); the trade is one trade in the venue's record. Detected: the fill reports the node's execution client
sent its engine (and, if the engine passes the duplicate on, the fill events its strategies see) run ahead of the venue's
trades, TcNodeFillsAheadOfVenue is delivered. Recorded: whether NautilusTrader
counted the duplicate fill twice (in the events its strategies saw, in the order's fills, in the position) and what it logged."""

from __future__ import annotations

import re
import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.fill_lost import _next_beat, _node_position, _venue_position
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeFillsAheadOfVenue",)
N, SEED = 2, 28  # duplicate_reports=N/SEED: one of the node's first N fills, drawn by random.Random(SEED) (recorded in the result)
DETECT_TIMEOUT_S = 20.0


def _logged(lines: list[str]) -> str:
    """What NautilusTrader's log said about the duplicate, in words that do not change with ids or times."""
    said = []
    if any("already contained" in line or "Duplicate TradeId" in line for line in lines):
        said.append("an error applying the duplicate OrderFilled (KeyError: its trade id already applied)")
    if any("InvalidStateTrigger" in line for line in lines):
        said.append("an InvalidStateTrigger for the duplicate")
    if any(re.search(r"(?i)duplicate", line) for line in lines) and not said:
        said.append("a duplicate fill")
    return ("its log shows " + " and ".join(said) if said else
            "its log file, read after the node stopped, shows nothing about the duplicate (a buffered log may not hold it)")


def execute(ctx: Context) -> Observation:
    fault = f"duplicate_reports={N}/{SEED}"
    with NodeLab(ctx, "node-duplicate-reports", venue_faults=(fault,)) as lab:
        lab.start_node()
        lab.wait_running()
        seq = lab.stack.last_seq()
        dup = lab.wait_node("the venue to send a fill's report twice", lambda: lab.fault_records("reports_duplicated"), timeout=20)[0]
        dup_wall = dup["at_ms"] / 1000
        since = time.monotonic() - max(0.0, time.time() - dup_wall)
        alert = lab.detect(ALERTS, since, timeout=DETECT_TIMEOUT_S, after_seq=seq)
        trades = lab.venue_state()["trades"]
        beat = _next_beat(lab)  # after the venue's count: every report sent by then has reached the node
        fired = sorted({a["labels"]["alertname"] for line in lab.stack.notifications() if line["seq"] > seq
                        for a in line["notification"]["alerts"] if a["status"] == "firing"})  # every alert delivered meanwhile
        lab.stop_node()
        cid = re.escape(dup["client_order_id"])
        node_fills = [f for f in lab.output("fills").get("fills", []) if f.get("client_order_id") == dup["client_order_id"]]
        logged = lab.log_lines(rf"(?i)(duplicate|Error on applying|InvalidStateTrigger|KeyError).*({cid}|{dup['trade_id']})", limit=5)
    detected = alert is not None
    venue_n, events, fills, received = len(trades), beat.get("fill_events"), beat.get("fills"), beat.get("fill_reports")
    node_pos, venue_pos = _node_position(beat), _venue_position(trades)
    twice = events is not None and events > venue_n
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the venue sent the report of fill {dup['fill']} twice "
                f"(trade {dup['trade_id']}, order {dup['client_order_id']}); node fill reports {received}, fill events {events}, "
                f"venue trades {venue_n}" if detected else
                f"no fills-ahead-of-venue notification within {DETECT_TIMEOUT_S:g} s of the duplicated report (trade {dup['trade_id']}, "
                f"order {dup['client_order_id']}); node fill reports {received}, fill events {events}, venue trades {venue_n}")
    findings = [
        ("the node received the fill twice (its execution client sent the engine one OrderFilled more than the venue traded)"
         if received is not None and received > venue_n else "the node did not count a second fill report"),
        ("NautilusTrader passed the duplicate fill on to its strategies: they saw one fill more than the venue traded"
         if twice else "NautilusTrader dropped the duplicate before its strategies: their fill events matched the venue's trades"),
        (f"the duplicated trade's order held {len(node_fills)} fill(s) in the node; the node's distinct fills "
         f"{'matched' if fills == venue_n else 'differed from'} the venue's trades and its position was "
         f"{abs(node_pos - venue_pos).normalize():f} BTC off the venue's"),
        _logged(logged),
    ]
    evidence = {"fault": fault, "seed": SEED, "n": N, "schedule": [dup["fill"]], "reports_duplicated": [dup],
                "node_fill_reports": received, "node_fill_events": events, "node_fills": fills, "venue_trades": venue_n, "counted_twice": twice,
                "node_fills_of_order": len(node_fills), "node_position": str(node_pos), "venue_position": str(venue_pos),
                "nautilus_log": logged}
    evidence["alerts_fired"] = fired
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_duplicate_reports", "the venue sends one fill's execution report twice; the fills-ahead alert is delivered",
              f"the venue sends the executionReport of one of the node's first {N} fills (seed {SEED}) twice, the same message both times "
              f"(fault duplicate_reports={N}/{SEED})",
              "TcNodeFillsAheadOfVenue delivered (the fill reports the node received ahead of the venue's trades); whether "
              "NautilusTrader passed the duplicate on to its strategies, its order and its position is recorded", execute, kind="node")
