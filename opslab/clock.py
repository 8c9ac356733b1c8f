"""The one source of wall-clock time for everything tc writes.

With SOURCE_DATE_EPOCH set, every timestamp is that instant, so the same inputs give
byte-identical artifacts. Durations (latency, scrape time) use time.monotonic directly and are
never written where determinism matters.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from opslab.errors import InputError


def now() -> datetime:
    """Current UTC time, or SOURCE_DATE_EPOCH when it is set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch != "":
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise InputError(
                f"SOURCE_DATE_EPOCH: expected an integer number of seconds, got {epoch!r}"
            ) from None
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    """RFC 3339 UTC with a Z suffix and no sub-second digits."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    """now() as an RFC 3339 string."""
    return iso(now())


def parse_iso(text: str) -> datetime:
    """Parse the RFC 3339 UTC form tc writes (and accepts in specs)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


class Stopwatch:
    """Elapsed time by the lab clock: real milliseconds, or 0 when SOURCE_DATE_EPOCH freezes the clock.

    Durations written into artifacts (probe latency, time to detect) go through this, so
    reproducible runs stay byte-identical; live measurements (scrape time) use time directly.
    """

    def __init__(self) -> None:
        import time

        self._time = time
        self._start = time.monotonic()

    def elapsed_ms(self) -> float:
        """Milliseconds since the stopwatch started (0.0 under SOURCE_DATE_EPOCH)."""
        if os.environ.get("SOURCE_DATE_EPOCH"):
            return 0.0
        return round((self._time.monotonic() - self._start) * 1000.0, 3)


def iso_from_ns(ns: int) -> str:
    """The RFC 3339 form of a Unix time in nanoseconds (NautilusTrader's timestamps)."""
    return iso(datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc))


def epoch_seconds(text: str) -> float:
    """Unix seconds of an RFC 3339 string tc wrote (ValueError when it is not one)."""
    return parse_iso(text).timestamp()


def epoch_seconds_fraction(text: str) -> float:
    """Unix seconds of an RFC 3339 UTC time with a fraction of a second: a node lifecycle's or heartbeat's milliseconds, or the
    first 26 characters of a NautilusTrader log line (microseconds) with "Z" added. ValueError when it is not one."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
