"""A small market-data client for the venue, loopback only: what the drills' detections run on.

VenueClient: GET with bounded exponential backoff on dropped/refused connections and 5xx, honours
429 Retry-After, and keeps a record (requests, failures, throttles, outage window).
DepthTracker: polls order-book snapshots and checks their lastUpdateId sequence: a jump is a
missing update (resync from a fresh snapshot), no progress for N polls is a stale book.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any

from opslab import urls


class VenueDown(Exception):
    """The venue did not answer within the retry bound."""


@dataclass
class ClientRecord:
    """What the client saw: counts in logical units, waits in seconds."""

    requests: int = 0
    failures: int = 0
    throttled: int = 0
    retry_after_waits: list[float] = field(default_factory=list)
    backoff_waits: list[float] = field(default_factory=list)
    outage_started_request: int | None = None
    outage_ended_request: int | None = None
    reconnected: bool = False


class VenueClient:
    """GET JSON from the fake venue (or any loopback venue) with bounded retries."""

    def __init__(self, base_url: str, timeout_s: float = 2.0, max_retries: int = 6, backoff_base_s: float = 0.05,
                 backoff_max_s: float = 0.8, max_retry_after_s: float = 10.0, retry: bool = True) -> None:
        self.target = urls.parse(base_url)
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_base_s, self.backoff_max_s, self.max_retry_after_s = backoff_base_s, backoff_max_s, max_retry_after_s
        self.retry = retry
        self.record = ClientRecord()

    def _once(self, path: str) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(self.target.address, self.target.port, timeout=self.timeout_s)
        try:
            conn.request("GET", path, headers={"Host": self.target.host, "Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(body) if body else None
        finally:
            conn.close()
            self.record.requests += 1

    def get(self, path: str) -> Any:
        """The JSON answer for PATH; VenueDown after max_retries failed attempts."""
        failures_in_row = 0
        while True:
            try:
                status, headers, body = self._once(path)
            except (OSError, http.client.HTTPException):
                status, headers, body = None, {}, None
            if status == 200:
                if self.record.outage_started_request is not None and self.record.outage_ended_request is None:
                    self.record.outage_ended_request = self.record.requests
                    self.record.reconnected = True
                return body
            if status == 429:
                self.record.throttled += 1
                wait = min(float(headers.get("retry-after", "1")), self.max_retry_after_s)
                self.record.retry_after_waits.append(wait)
                if not self.retry:
                    raise VenueDown(f"{path}: throttled (429), retry disabled")
                time.sleep(wait)
                continue
            self.record.failures += 1
            if self.record.outage_started_request is None or self.record.outage_ended_request is not None:
                self.record.outage_started_request, self.record.outage_ended_request = self.record.requests, None
            failures_in_row += 1
            if not self.retry or failures_in_row > self.max_retries:
                raise VenueDown(f"{path}: no answer after {failures_in_row} attempt(s)")
            wait = min(self.backoff_max_s, self.backoff_base_s * (2 ** (failures_in_row - 1)))
            self.record.backoff_waits.append(wait)
            time.sleep(wait)


@dataclass
class DepthEvent:
    """One poll's verdict."""

    poll: int
    sequence: int
    verdict: str  # base, ok, gap, stale, resynced, unchanged
    missing: int = 0


class DepthTracker:
    """Checks order-book snapshots for sequence gaps and staleness."""

    PATH = "/api/v3/depth?symbol=BTCUSDT&limit=5"

    def __init__(self, client: VenueClient, stale_after_polls: int = 3, detect: bool = True) -> None:
        self.client, self.stale_after_polls, self.detect = client, stale_after_polls, detect
        self.last: int | None = None
        self.unchanged = 0
        self.polls = 0
        self.events: list[DepthEvent] = []

    def poll(self) -> DepthEvent:
        """Fetch one snapshot and judge its sequence against the last one."""
        self.polls += 1
        seq = int(self.client.get(self.PATH)["lastUpdateId"])
        if self.last is None:
            event = DepthEvent(self.polls, seq, "base")
        elif seq == self.last + 1 or not self.detect:
            event = DepthEvent(self.polls, seq, "ok")
            self.unchanged = 0
        elif seq == self.last:
            self.unchanged += 1
            event = DepthEvent(self.polls, seq, "stale" if self.unchanged >= self.stale_after_polls else "unchanged")
        else:
            event = DepthEvent(self.polls, seq, "gap", missing=max(0, seq - self.last - 1))
            self.events.append(event)
            seq = int(self.client.get(self.PATH)["lastUpdateId"])  # resync: a fresh snapshot is the new base
            self.unchanged = 0
            event = DepthEvent(self.polls, seq, "resynced", missing=event.missing)
        self.last = seq
        self.events.append(event)
        return event
