"""disconnect: the venue drops connections; the probe reports down, the client reconnects with bounded backoff."""

from __future__ import annotations

from opslab.venue.client import VenueClient, VenueDown
from opslab.venue.server import BinanceVenue
from opslab.drills.base import Context, Drill, Observation, base_spec

DROPPED = 3


def execute(ctx: Context) -> Observation:
    path = ctx.spec("disconnect", base_spec("disconnect-drill", bars=60))
    with BinanceVenue() as venue:
        client = VenueClient(venue.url, max_retries=5, retry=ctx.detection)
        client.get("/api/v3/ping")
        venue.set_faults({"drop": True})  # the injected fault: every connection is dropped
        probe = ctx.tc("connectivity", "probe", "--spec", str(path), "--url", f"{venue.url}/api/v3/ping", "--timeout-ms", "1000") \
            if ctx.detection else None
        venue.set_faults({"drop": DROPPED})  # the venue comes back after DROPPED more dropped connections
        try:
            client.get("/api/v3/ping")
            answered = True
        except VenueDown:
            answered = False
    rec = client.record
    probe_down = probe is not None and probe.code == 4 and probe.json()["data"]["probe"]["outcome"] == "down"
    outage = (rec.outage_started_request, rec.outage_ended_request)
    detected = probe_down and answered and rec.reconnected and len(rec.backoff_waits) == DROPPED
    observed = (f"probe {'down' if probe_down else 'not down'}; client {'reconnected' if rec.reconnected else 'did not reconnect'} after "
                f"{rec.failures} failed request(s), backoff {rec.backoff_waits}")
    return Observation(detected, observed, rec.failures if detected else None, "requests",
                       {"probe_exit_code": probe.code if probe else None, "probe_error_class": probe.json()["data"]["probe"]["error_class"] if probe else None,
                        "failed_requests": rec.failures, "backoff_waits_s": rec.backoff_waits, "outage_window_requests": list(outage),
                        "reconnected": rec.reconnected})


DRILL = Drill("disconnect", "the venue drops connections: probe down, bounded reconnect, outage recorded",
              "the fake venue closes every connection, then drops 3 more before it answers again",
              "tc connectivity probe exits 4 (down) and the client reconnects with exponential backoff, recording the outage window", execute)
