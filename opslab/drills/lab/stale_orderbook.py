"""stale_orderbook: depth snapshots stop advancing; detected within the configured number of polls."""

from __future__ import annotations

from opslab.venue.client import DepthTracker, VenueClient
from opslab.venue.server import BinanceVenue
from opslab.drills.base import Context, Drill, Observation

BOUND = 3  # polls without progress that count as stale
POLLS_AFTER_FAULT = BOUND + 2


def execute(ctx: Context) -> Observation:
    with BinanceVenue() as venue:
        tracker = DepthTracker(VenueClient(venue.url), stale_after_polls=BOUND, detect=ctx.detection)
        tracker.poll()
        tracker.poll()
        venue.set_faults({"stale_book": True})  # the injected fault: lastUpdateId and E freeze
        after = [tracker.poll() for _ in range(POLLS_AFTER_FAULT)]
    stale_at = next((i for i, e in enumerate(after) if e.verdict == "stale"), None)
    # The first poll after the fault already returns the frozen id, so staleness shows BOUND polls later at most.
    detected = stale_at is not None and stale_at + 1 <= BOUND + 1
    observed = f"stale detected {stale_at + 1} poll(s) after the freeze (bound {BOUND})" if stale_at is not None else \
        f"not detected in {POLLS_AFTER_FAULT} polls; verdicts {[e.verdict for e in after]}"
    return Observation(detected, observed, stale_at + 1 if detected else None, "polls",
                       {"bound_polls": BOUND, "verdicts_after_fault": [e.verdict for e in after]})


DRILL = Drill("stale_orderbook", "order-book snapshots stop advancing: detected within the bound",
              "the fake venue freezes the book's lastUpdateId and timestamp",
              f"the depth tracker flags the book stale within {BOUND} polls of no progress", execute)
