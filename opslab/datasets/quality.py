"""Data quality checks over a dataset's bars: one function per check, one artifact (quality.json).

Pure Python over the canonical rows (no NautilusTrader): `tc data check` stays a fast path. Each
check counts its findings and fails when the count exceeds its threshold (default 0). Checks:

| check | finds |
| --- | --- |
| non_monotonic | a bar whose close time is earlier than the bar before it |
| duplicate_timestamps | a bar whose close time equals the bar before it |
| gaps | a step between consecutive bars longer than the interval (missing bars) |
| ohlc_inconsistent | low above open/close/high, or high below open/close |
| non_positive_prices | an open, high, low or close at or below zero |
| zero_volume_runs | RUN or more consecutive bars with zero volume (one finding per run) |
| outliers | a close-to-close log return whose robust z-score (median/MAD) exceeds ZSCORE |
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from opslab import digests
from opslab.contracts import SCHEMA_VERSION

CHECKS = ("non_monotonic", "duplicate_timestamps", "gaps", "ohlc_inconsistent", "non_positive_prices", "zero_volume_runs", "outliers")
# Rows NautilusTrader cannot turn into bars at all (its Bar refuses them): a spec cannot accept these.
ENGINE_FATAL = ("ohlc_inconsistent",)
MAX_EXAMPLES = 5
MAD_SCALE = 0.6745  # the modified z-score of Iglewicz and Hoaglin: 0.6745 (x - median) / MAD


@dataclass(frozen=True)
class Row:
    """One bar: close time (epoch seconds), prices and volume."""

    line: int
    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass
class Settings:
    """Thresholds: the largest count each check tolerates, the z-score bound, the zero-volume run length."""

    zscore: float = 10.0
    zero_volume_run: int = 3
    max_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"zscore": self.zscore, "zero_volume_run": self.zero_volume_run,
                "max_counts": {name: self.max_counts.get(name, 0) for name in CHECKS}}


def _finding(row: Row, detail: str) -> dict[str, Any]:
    from opslab import clock

    return {"line": row.line, "ts_close": clock.iso_from_ns(row.ts * 1_000_000_000), "detail": detail}


def _order(rows: list[Row], interval: int) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {"non_monotonic": [], "duplicate_timestamps": [], "gaps": []}
    for prev, row in itertools.pairwise(rows):
        step = row.ts - prev.ts
        if step < 0:
            found["non_monotonic"].append(_finding(row, f"{-step} s earlier than the bar before it (line {prev.line})"))
        elif step == 0:
            found["duplicate_timestamps"].append(_finding(row, f"same close time as line {prev.line}"))
        elif step > interval:
            found["gaps"].append(_finding(row, f"{step // interval - 1} bar(s) missing after line {prev.line}"))
    return found


def _ohlc(rows: Iterable[Row]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r.low > min(r.open, r.close, r.high) or r.high < max(r.open, r.close):
            out.append(_finding(r, f"open {r.open} high {r.high} low {r.low} close {r.close}"))
    return out


def _non_positive(rows: Iterable[Row]) -> list[dict[str, Any]]:
    return [_finding(r, f"open {r.open} high {r.high} low {r.low} close {r.close}")
            for r in rows if min(r.open, r.high, r.low, r.close) <= 0]


def _zero_volume_runs(rows: list[Row], run: int) -> list[dict[str, Any]]:
    out, start, length = [], None, 0
    for r in rows + [None]:  # a sentinel closes the last run
        if r is not None and r.volume == 0:
            start, length = (start or r), length + 1
            continue
        if length >= run:
            out.append(_finding(start, f"{length} consecutive bars with zero volume"))
        start, length = None, 0
    return out


def _outliers(rows: list[Row], bound: float) -> list[dict[str, Any]]:
    pairs = [(prev, r) for prev, r in itertools.pairwise(rows) if prev.close > 0 and r.close > 0]
    if len(pairs) < 3:
        return []
    returns = [math.log(r.close / prev.close) for prev, r in pairs]
    median = statistics.median(returns)
    mad = statistics.median(abs(x - median) for x in returns)
    if mad == 0:
        return []  # constant returns: no spread to measure against
    out = []
    for (prev, r), x in zip(pairs, returns, strict=True):
        z = MAD_SCALE * (x - median) / mad
        if abs(z) > bound:
            out.append(_finding(r, f"close {r.close} after {prev.close}: robust z-score {z:.1f}"))
    return out


def evaluate(rows: list[Row], dataset_id: str, fingerprint: str, interval_seconds: int, settings: Settings) -> dict[str, Any]:
    """The quality document (schemas/dataset_quality.schema.json) for ROWS, sealed (digests.stamp): a run trusts
    only a record whose seal verifies, so editing "passed" by hand does not open the quality gate."""
    found = _order(rows, interval_seconds)
    found["ohlc_inconsistent"] = _ohlc(rows)
    found["non_positive_prices"] = _non_positive(rows)
    found["zero_volume_runs"] = _zero_volume_runs(rows, settings.zero_volume_run)
    found["outliers"] = _outliers(rows, settings.zscore)
    checks = []
    for name in CHECKS:
        limit = settings.max_counts.get(name, 0)
        items = found[name]
        checks.append({"name": name, "count": len(items), "threshold": limit, "passed": len(items) <= limit,
                       "examples": items[:MAX_EXAMPLES]})
    return digests.stamp({"schema_version": SCHEMA_VERSION, "dataset_id": dataset_id, "fingerprint": fingerprint, "rows": len(rows),
            "interval_seconds": interval_seconds, "settings": settings.as_dict(),
            "passed": all(c["passed"] for c in checks), "failed_checks": [c["name"] for c in checks if not c["passed"]],
            "checks": checks})
