"""missing_update: order-book sequence ids jump; the gap is detected and the book resynced from a snapshot."""

from __future__ import annotations

from opslab.venue.client import DepthTracker, VenueClient
from opslab.venue.server import BinanceVenue
from opslab.drills.base import Context, Drill, Observation

GAP = 10


def execute(ctx: Context) -> Observation:
    with BinanceVenue() as venue:
        tracker = DepthTracker(VenueClient(venue.url), detect=ctx.detection)
        for _ in range(3):
            tracker.poll()
        venue.set_faults({"sequence_gap": GAP})  # the injected fault: GAP updates are never sent
        fault_poll = tracker.poll()
        venue.set_faults({})
        after = tracker.poll()
    gaps = [e for e in tracker.events if e.verdict == "gap"]
    resynced = fault_poll.verdict == "resynced"
    detected = bool(gaps) and gaps[0].missing == GAP and resynced and after.verdict == "ok"
    observed = (f"gap of {gaps[0].missing} update(s) detected at poll {gaps[0].poll}, resynced from a snapshot, next poll {after.verdict}"
                if gaps else f"no gap detected; poll verdicts {[e.verdict for e in tracker.events]}")
    return Observation(detected, observed, 1 if detected else None, "polls",
                       {"verdicts": [e.verdict for e in tracker.events], "missing_updates": gaps[0].missing if gaps else 0})


DRILL = Drill("missing_update", "a sequence gap in order-book updates is detected and the book resynced",
              f"the fake venue skips {GAP} order-book update ids",
              "the depth tracker reports the gap with its size and resyncs from a fresh snapshot", execute)
