"""node_missing_update: the venue's depth stream skips update ids (a gap) for a few seconds. Recorded:
whether NautilusTrader's Binance client notices and rebuilds its book from a snapshot; detected: the
ops actor counts the gap, TcNodeBookSequenceGap is delivered."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeBookSequenceGap",)
GAP = 5
REBUILD = r"OrderBook snapshot rebuild for .* starting"


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-missing-update") as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("book updates", lambda: (lab.heartbeat() or {}).get("seconds_since_market_data") is not None)
        seq = lab.stack.last_seq()
        wall = time.time()
        t0 = lab.faults(f"sequence_gap={GAP}")  # the injected fault: every depth diff skips GAP update ids
        time.sleep(2.0)
        lab.faults()
        alert = lab.detect(ALERTS, t0, timeout=25, after_seq=seq)
        time.sleep(1.0)  # a resync, if any, would have started by now
        beat = lab.heartbeat() or {}
        lab.stop_node()  # NautilusTrader's log file is complete once the node stopped
        rebuilds = lab.log_times(REBUILD)
    rebuilds_before = sum(t < wall for t in rebuilds)
    rebuilds_after = len(rebuilds) - rebuilds_before
    gaps, missed = beat.get("book_sequence_gaps", 0), beat.get("book_updates_missed", 0)
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the gap began; the ops actor counted {gaps} gap(s)"
                if detected else f"no book-gap notification within 25 s (the ops actor counted {gaps} gap(s))")
    resynced = rebuilds_after > 0
    findings = [f"NautilusTrader's Binance data client {'rebuilt' if resynced else 'did NOT rebuild'} its order book from a snapshot after "
                f"{gaps} depth message(s) skipped {missed} update id(s) (snapshot rebuilds in its log: {rebuilds_before} before the gap, "
                f"{rebuilds_after} after it): it applies each diff without checking U against the previous u, and its OrderBookDeltas "
                "keep only u as the sequence"]
    evidence = {"gap_per_message": GAP, "fault_seconds": 2.0, "book_sequence_gaps": gaps, "book_updates_missed": missed,
                "snapshot_rebuilds_before_gap": rebuilds_before, "snapshot_rebuilds_after_gap": rebuilds_after}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_missing_update", "a gap in depth update ids reaches the live node; the book-gap alert is delivered",
              f"the venue's depth diffs skip {GAP} update ids each for 2 s (fault sequence_gap={GAP})",
              "the ops actor counts the gap and TcNodeBookSequenceGap is delivered; whether the adapter resyncs is recorded",
              execute, kind="node")
