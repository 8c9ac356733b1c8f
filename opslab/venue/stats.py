"""The venue's own statistics: counters the drills and the exporter read, and their artifact.

artifacts/venue/<run_id>/stats.json (schemas/venue_stats.schema.json) is written atomically at
start, at most once a second while anything in it changed, and once at stop (not at all for the
venue without a spec, which persists nothing). The request counts are the fault switch's
(fault_switch.VenueState.stats); the rest is counted here.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from opslab import clock, contracts, digests, fs
from opslab.contracts import SCHEMA_VERSION
from opslab.venue import faults as fault_switch

WRITE_EVERY_S = 1.0
OUTCOMES = ("served", "throttled", "banned", "dropped", "errors")
COUNTERS = ("depth_snapshots", "ws_connections_opened", "ws_connections_refused", "ws_closed_by_fault", "ws_subscribe_commands",
            "ws_pings_sent", "ws_pongs_received", "ws_half_open", "market_published", "market_suppressed")


def path_for(run_id: str) -> Path:
    """Where the venue for RUN_ID keeps its statistics."""
    return contracts.artifact("venue_stats").at(fs.root(), run_id)


class VenueStats:
    """Counters behind one lock, and the thread that writes them out."""

    def __init__(self, run_id: str, switch: fault_switch.VenueState, persist: bool = True) -> None:
        self.run_id, self.switch = run_id, switch
        self.path = path_for(run_id) if persist else None
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.last_subscribe_at: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: dict[str, Any] | None = None
        self.trades: Callable[[], int] = lambda: 0  # the account's trades in the venue's record (server.py sets it)
        self.orders: Callable[[], dict[str, int]] = lambda: {"open": 0, "partially_filled": 0}  # the account's open orders (server.py)
        self.user_streams: Callable[[], int] = lambda: 0  # user data streams delivered now (server.py)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def subscribed(self) -> None:
        """One SUBSCRIBE command, now."""
        with self.lock:
            self.counts["ws_subscribe_commands"] += 1
            self.last_subscribe_at = clock.now_iso()

    def document(self) -> dict[str, Any]:
        """The stats.json document as of now."""
        with self.switch.lock:
            req = dict(self.switch.stats)
            faults = dict(self.switch.faults)
            violations, banned = self.switch.violations, self.switch.banned_until
            lost, withheld = [dict(f) for f in self.switch.fills_lost], self.switch.fills_withheld
            splits, dups = [dict(f) for f in self.switch.partial_fills], [dict(f) for f in self.switch.reports_duplicated]
            duplicated, reordered = self.switch.fills_duplicated, [dict(f) for f in self.switch.reports_reordered]
            acks, offset = [dict(f) for f in self.switch.acks_lost], self.switch.offset_ms
            rejects = {str(code): n for code, n in sorted(self.switch.rejects.items(), reverse=True)}
            refused = [dict(f) for f in self.switch.timestamps_rejected]
            orders_refused = [dict(f) for f in self.switch.orders_refused]
            orders_rejected = [dict(f) for f in self.switch.orders_rejected]
            raced = [dict(f) for f in self.switch.cancels_raced]
            streams_ended, streams_ended_total = [dict(f) for f in self.switch.user_streams_ended], self.switch.user_streams_ended_total
        with self.lock:
            c, last = dict(self.counts), self.last_subscribe_at
        remaining = banned - time.monotonic() if banned else 0.0
        return {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "updated_at": clock.now_iso(),
                "requests": {"total": req["requests"], **{k: req[k] for k in OUTCOMES}},
                "rate_limit": {"violations": violations,
                               "banned_until": clock.iso_from_ns(int((time.time() + remaining) * 1e9)) if remaining > 0 else None},
                "depth_snapshots": c["depth_snapshots"],
                "ws": {"connections_opened": c["ws_connections_opened"], "connections_refused": c["ws_connections_refused"],
                       "closed_by_fault": c["ws_closed_by_fault"], "subscribe_commands": c["ws_subscribe_commands"],
                       "last_subscribe_at": last, "pings_sent": c["ws_pings_sent"], "pongs_received": c["ws_pongs_received"],
                       "half_open": c["ws_half_open"]},
                "market_messages": {"published": c["market_published"], "suppressed": c["market_suppressed"]},
                "trades": {"account": self.trades(), "reports_withheld": withheld, "reports_duplicated": duplicated},
                "orders": self.orders(),
                "fills_lost": lost,
                "partial_fills": splits,
                "reports_duplicated": dups,
                "reports_reordered": reordered,
                "acks_lost": acks,
                "clock_offset_ms": offset,
                "rejects": rejects,
                "timestamps_rejected": refused,
                "orders_refused": orders_refused,
                "orders_rejected": orders_rejected,
                "user_streams": {"active": self.user_streams(), "ended": streams_ended_total},
                "user_streams_ended": streams_ended,
                "cancels_raced": raced,
                "faults_active": fault_switch.active_faults(faults)}

    def write(self) -> bool:
        """Write stats.json when anything but its time changed; True when written."""
        if self.path is None:
            return False
        doc = self.document()
        unchanged = {k: v for k, v in doc.items() if k != "updated_at"}
        if unchanged == self._written:
            return False
        doc = digests.stamp(doc)
        contracts.ensure_valid("venue_stats", doc, str(self.path))
        fs.write_json(self.path, doc)
        self._written = unchanged
        return True

    def start(self) -> None:
        self.write()
        self._thread = threading.Thread(target=self._loop, name="venue-stats", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(WRITE_EVERY_S):
            self.write()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.write()
