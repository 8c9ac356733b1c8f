"""rate_limit_exhaustion: the venue answers 429 + Retry-After; the client honours it and stays in budget."""

from __future__ import annotations

from opslab.venue.client import VenueClient, VenueDown
from opslab.venue.server import BinanceVenue
from opslab.drills.base import Context, Drill, Observation

REQUESTS = 6  # depth snapshots, weight 5 each, against a budget of 10 per second: two per window


def execute(ctx: Context) -> Observation:
    with BinanceVenue(faults={"rate_limit": {"weight": 10, "window_s": 1}}) as venue:
        client = VenueClient(venue.url, retry=ctx.detection)
        answered = 0
        first_429 = None
        try:
            for _ in range(REQUESTS):
                client.get("/api/v3/depth?symbol=BTCUSDT&limit=5")
                answered += 1
                if client.record.throttled and first_429 is None:
                    first_429 = client.record.requests - 1
        except VenueDown:
            pass
        stats = dict(venue.faults.stats)
    rec = client.record
    windows = -(-REQUESTS // 2)
    honoured = bool(rec.retry_after_waits) and all(w >= 1 for w in rec.retry_after_waits)
    detected = answered == REQUESTS and rec.throttled >= 1 and honoured and stats["throttled"] <= windows
    observed = (f"{rec.throttled} throttled answer(s), Retry-After honoured {rec.retry_after_waits}, {answered}/{REQUESTS} requests answered"
                if rec.throttled else "never throttled")
    if not ctx.detection and rec.throttled:
        observed = f"throttled {rec.throttled}x but Retry-After was not honoured; {answered}/{REQUESTS} requests answered"
    return Observation(detected, observed, first_429 if detected and first_429 is not None else (rec.requests if detected else None), "requests",
                       {"throttled": rec.throttled, "retry_after_waits_s": rec.retry_after_waits, "answered": answered,
                        "venue_throttled": stats["throttled"], "venue_served": stats["served"], "budget": "10 weight / 1 s"})


DRILL = Drill("rate_limit_exhaustion", "the venue throttles with 429 + Retry-After: the client waits and stays in budget",
              "a request-weight budget of 10 per second against 6 depth requests of weight 5",
              "the client records the 429s, waits Retry-After each time (no hammering), and all requests are answered", execute)
