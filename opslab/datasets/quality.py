"""Data quality checks over a dataset's bars: one function per check, one artifact (quality.json).

Python over the canonical rows (no NautilusTrader): `tc data check` stays a fast path. The rows are
streamed: one pass keeps a count and the first MAX_EXAMPLES findings per check and 8 bytes per bar for
the outlier check's returns (their median and MAD found in place with numpy); a second pass, only when there
are outliers, fetches their examples. Each check counts its findings and fails when the count exceeds
its threshold (default 0). Checks:

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

import math
from array import array
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable

import numpy as np

from opslab import digests
from opslab.contracts import SCHEMA_VERSION

CHECKS = ("non_monotonic", "duplicate_timestamps", "gaps", "ohlc_inconsistent", "non_positive_prices", "zero_volume_runs", "outliers")
# Rows NautilusTrader cannot turn into bars at all (its Bar refuses them): a spec cannot accept these.
ENGINE_FATAL = ("ohlc_inconsistent",)
MAX_EXAMPLES = 5
MAD_SCALE = 0.6745  # the modified z-score of Iglewicz and Hoaglin: 0.6745 (x - median) / MAD
OUTLIER_SLICE = 1 << 20  # returns scored at a time (8 MiB of floats)


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


class _Found:
    """The count of one check's findings and the first MAX_EXAMPLES of them."""

    def __init__(self) -> None:
        self.count, self.examples = 0, []

    def add(self, row: Row, detail: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(_finding(row, detail))


def _scan(rows: Iterable[Row], interval: int, run: int) -> tuple[dict[str, _Found], array, int]:
    """One pass: every check but the outliers' examples; the close-to-close log returns (NaN where a close is not positive)."""
    found = {name: _Found() for name in CHECKS}
    returns = array("d")
    prev: Row | None = None
    zero_start: Row | None = None
    zero_length = n = 0
    for r in rows:
        n += 1
        if prev is not None:
            step = r.ts - prev.ts
            if step < 0:
                found["non_monotonic"].add(r, f"{-step} s earlier than the bar before it (line {prev.line})")
            elif step == 0:
                found["duplicate_timestamps"].add(r, f"same close time as line {prev.line}")
            elif step > interval:
                found["gaps"].add(r, f"{step // interval - 1} bar(s) missing after line {prev.line}")
            returns.append(math.log(r.close / prev.close) if prev.close > 0 and r.close > 0 else math.nan)
        if r.low > min(r.open, r.close, r.high) or r.high < max(r.open, r.close):
            found["ohlc_inconsistent"].add(r, f"open {r.open} high {r.high} low {r.low} close {r.close}")
        if min(r.open, r.high, r.low, r.close) <= 0:
            found["non_positive_prices"].add(r, f"open {r.open} high {r.high} low {r.low} close {r.close}")
        if r.volume == 0:
            zero_start, zero_length = (zero_start or r), zero_length + 1
        else:
            if zero_length >= run:
                found["zero_volume_runs"].add(zero_start, f"{zero_length} consecutive bars with zero volume")
            zero_start, zero_length = None, 0
        prev = r
    if zero_length >= run:
        found["zero_volume_runs"].add(zero_start, f"{zero_length} consecutive bars with zero volume")
    return found, returns, n


def _median_in_place(values: np.ndarray) -> float:
    """statistics.median of VALUES (the mean of the two middle ones when their number is even), reordering VALUES."""
    n = len(values)
    k = n // 2
    if n % 2:
        values.partition(k)
        return float(values[k])
    values.partition((k - 1, k))
    return (float(values[k - 1]) + float(values[k])) / 2


def _outliers(returns: array, bound: float) -> tuple[int, list[tuple[int, float]]]:
    """(count, the first MAX_EXAMPLES (pair index, z)) of the returns whose robust z-score exceeds BOUND. Memory: the
    returns (8 bytes a bar), one copy of them to find the median and MAD in place, and one slice at a time after."""
    every = np.frombuffer(returns, dtype=np.float64) if len(returns) else np.empty(0)
    work = every[~np.isnan(every)]
    if len(work) < 3:
        return 0, []
    median = _median_in_place(work)
    np.subtract(work, median, out=work)
    np.abs(work, out=work)
    mad = _median_in_place(work)
    del work
    if mad == 0:
        return 0, []  # constant returns: no spread to measure against
    count, first = 0, []
    for start in range(0, len(every), OUTLIER_SLICE):
        z = MAD_SCALE * (every[start:start + OUTLIER_SLICE] - median) / mad
        hits = np.flatnonzero(np.abs(z) > bound)
        count += len(hits)
        first.extend((start + int(i), float(z[i])) for i in hits[:MAX_EXAMPLES - len(first)])
    return count, first


def evaluate(rows: Callable[[], Iterable[Row]], dataset_id: str, fingerprint: str, interval_seconds: int, settings: Settings) -> dict[str, Any]:
    """The quality document (schemas/dataset_quality.schema.json) for the rows ROWS() yields (called once, or
    twice when there are outliers to show), sealed (digests.stamp): a run trusts only a record whose seal verifies, so
    editing "passed" by hand does not open the quality gate."""
    found, returns, n = _scan(rows(), interval_seconds, settings.zero_volume_run)
    count, first = _outliers(returns, settings.zscore)
    del returns
    outliers = found["outliers"]
    if first:
        wanted = {i: z for i, z in first}  # pair i is (row i, row i + 1)
        prev = None
        for i, r in enumerate(rows()):
            if i - 1 in wanted:
                outliers.add(r, f"close {r.close} after {prev.close}: robust z-score {wanted[i - 1]:.1f}")
            if i - 1 >= first[-1][0]:
                break
            prev = r
    outliers.count = count
    checks = []
    for name in CHECKS:
        limit = settings.max_counts.get(name, 0)
        items = found[name]
        checks.append({"name": name, "count": items.count, "threshold": limit, "passed": items.count <= limit,
                       "examples": items.examples})
    return digests.stamp({"schema_version": SCHEMA_VERSION, "dataset_id": dataset_id, "fingerprint": fingerprint, "rows": n,
                          "interval_seconds": interval_seconds, "settings": settings.as_dict(),
                          "passed": all(c["passed"] for c in checks), "failed_checks": [c["name"] for c in checks if not c["passed"]],
                          "checks": checks})
