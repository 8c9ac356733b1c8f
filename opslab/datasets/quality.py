"""Data quality checks over a dataset's bars: one function per check, one artifact (quality.json).

Over the canonical rows (no NautilusTrader): `tc data check` stays a fast path. The rows are
streamed: one pass keeps a count and the first MAX_EXAMPLES findings per check and 8 bytes per bar for
the outlier check's returns (their median and MAD found in place with numpy); a second pass, only when there
are outliers, fetches their examples. evaluate_blocks does this with numpy over each block of a bars.csv
(prices as exact integers at the column's fixed number of decimals); a block it cannot read that way
(a price in exponent form, a mixed number of decimals, more digits than an int64 holds) sends the whole
evaluation to evaluate, one Python Row per bar, whose findings it reproduces exactly
(tests/unit/datasets/test_quality.py). Each check counts its findings and fails when the count exceeds
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
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    held = [returns]
    del returns

    def examples(first: list[tuple[int, float]]) -> list[dict[str, Any]]:
        out = []
        wanted = {i: z for i, z in first}  # pair i is (row i, row i + 1)
        prev = None
        for i, r in enumerate(rows()):
            if i - 1 in wanted:
                out.append(_finding(r, f"close {r.close} after {prev.close}: robust z-score {wanted[i - 1]:.1f}"))
            if i - 1 >= first[-1][0]:
                break
            prev = r
        return out

    return _document(found, held, n, examples, dataset_id, fingerprint, interval_seconds, settings)


def _document(found: dict[str, _Found], held: list[array], n: int, examples: Callable[[list[tuple[int, float]]], list[dict[str, Any]]],
              dataset_id: str, fingerprint: str, interval_seconds: int, settings: Settings) -> dict[str, Any]:
    returns = held.pop()  # the only reference now: freed before the examples' pass
    count, first = _outliers(returns, settings.zscore)
    del returns
    outliers = found["outliers"]
    if first:
        outliers.examples = examples(first)
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

# --- the same checks over blocks of columns -------------------------------------------------------------

# Close prices whose integer form (value * 10^decimals) is below this have the same log return as the row path's
# math.log(Decimal(b) / Decimal(a)): float(I1) / float(I0) is then the correctly rounded quotient, and Decimal's
# 28-digit quotient (relative error <= 5e-28) cannot sit across a midpoint between two doubles from it, since such a
# midpoint differs from I1 / I0 by more than 2^-88 relative (I0 < 2^34, the midpoint a 54-bit dyadic). Above it,
# the block's returns are computed as the row path does.
_EXACT_RATIO = 1 << 34


class _NotColumnar(Exception):
    """A block the columnar path does not read exactly: the row path takes the whole evaluation."""


@dataclass
class Columns:
    """A block of canonical rows: close times (epoch seconds) and the texts of open, high, low, close, volume; UNITS,
    when the caller has them, are the same values as exact integers (value * 10^decimals, the prices' decimals those
    of every price text), which the scan then takes instead of parsing the texts. With UNITS, TEXTS may be the values
    as decimals whose text is plain (pyarrow's decimal text: its as_py is Decimal of that text)."""

    ts: np.ndarray
    texts: list[pa.Array]
    units: list[np.ndarray] | None = None


def _integers(text: pa.Array, decimals: int) -> np.ndarray:
    """VALUE * 10^DECIMALS of every text, exactly (int64); _NotColumnar unless each has exactly DECIMALS decimals."""
    pattern = r"^-?[0-9]+\.[0-9]{%d}$" % decimals if decimals else r"^-?[0-9]+$"
    if not pc.all(pc.match_substring_regex(text, pattern)).as_py():
        raise _NotColumnar
    try:
        return pc.cast(pc.replace_substring(text, ".", ""), pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # more digits than an int64 holds
        raise _NotColumnar from None


def _decimals(text: str) -> int:
    return len(text) - text.index(".") - 1 if "." in text else 0


class _Scan:
    """The state _scan keeps from one row to the next, carried from one block to the next."""

    def __init__(self, interval: int, run: int) -> None:
        self.found = {name: _Found() for name in CHECKS}
        self.returns = array("d")
        self.interval, self.run = interval, run
        self.n = 0
        self.decimals: int | None = None
        self.prev_ts: int | None = None
        self.prev_close: tuple[int, str] | None = None  # (integer form, text)
        self.zero_start: tuple[int, int] | None = None  # (row index, close time) of the zero-volume run going on
        self.zero_length = 0

    def _add(self, name: str, index: int, ts: int, detail: str) -> None:
        found = self.found[name]
        found.count += 1
        if len(found.examples) < MAX_EXAMPLES:
            found.examples.append(_finding(Row(index + 2, ts, *([Decimal(0)] * 5)), detail))

    def _each(self, name: str, mask: np.ndarray, start: int, ts: np.ndarray, detail: Callable[[int], str]) -> None:
        hits = np.flatnonzero(mask)
        found = self.found[name]
        room = MAX_EXAMPLES - len(found.examples)
        for i in hits[:room]:
            found.examples.append(_finding(Row(start + int(i) + 2, int(ts[i]), *([Decimal(0)] * 5)), detail(int(i))))
        found.count += len(hits)

    def block(self, cols: Columns) -> None:
        m = len(cols.ts)
        if not m:
            return
        texts = cols.texts
        if self.decimals is None:
            self.decimals = _decimals(str(texts[0][0].as_py()))
        if cols.units is not None:
            o, h, lo, c, volume = cols.units
            zero = volume == 0
        else:
            o, h, lo, c = (_integers(t, self.decimals) for t in texts[:4])
            volume = texts[4]
            if not pc.all(pc.match_substring_regex(volume, r"^-?[0-9]+(\.[0-9]+)?$")).as_py():
                raise _NotColumnar
            zero = pc.match_substring_regex(volume, r"^-?0+(\.0+)?$").to_numpy(zero_copy_only=False)
        ts = cols.ts
        start = self.n
        word = lambda k, i: str(Decimal(texts[k][i].as_py()))
        # close-time steps, each against the bar before it (the previous block's last bar for the first)
        before = np.empty(m, dtype=np.int64)
        before[1:] = ts[:-1]
        before[0] = ts[0] if self.prev_ts is None else self.prev_ts
        step = ts - before
        first = 1 if self.prev_ts is None else 0
        valid = np.arange(m) >= first
        self._each("non_monotonic", valid & (step < 0), start, ts,
                   lambda i: f"{-int(step[i])} s earlier than the bar before it (line {start + i + 1})")
        self._each("duplicate_timestamps", valid & (step == 0), start, ts, lambda i: f"same close time as line {start + i + 1}")
        self._each("gaps", valid & (step > self.interval), start, ts,
                   lambda i: f"{int(step[i]) // self.interval - 1} bar(s) missing after line {start + i + 1}")
        prices = lambda i: f"open {word(0, i)} high {word(1, i)} low {word(2, i)} close {word(3, i)}"
        bad = (lo > np.minimum(np.minimum(o, c), h)) | (h < np.maximum(o, c))
        self._each("ohlc_inconsistent", bad, start, ts, prices)
        self._each("non_positive_prices", np.minimum(np.minimum(o, h), np.minimum(lo, c)) <= 0, start, ts, prices)
        self._zero_runs(zero, start, ts)
        self._returns(c, texts[3], first)
        self.prev_ts = int(ts[-1])
        self.prev_close = (int(c[-1]), texts[3][m - 1].as_py())
        self.n += m

    def _returns(self, c: np.ndarray, close_text: pa.Array, first: int) -> None:
        prev = np.empty(len(c), dtype=np.int64)
        prev[1:] = c[:-1]
        if self.prev_close is not None:
            prev[0] = self.prev_close[0]
        c, prev = c[first:], prev[first:]
        if not len(c):
            return
        positive = (c > 0) & (prev > 0)
        if (np.abs(c) >= _EXACT_RATIO).any() or (np.abs(prev) >= _EXACT_RATIO).any():
            texts = close_text.to_pylist()
            before = [self.prev_close[1] if self.prev_close else None, *texts[:-1]][first:]
            values = [math.log(Decimal(b) / Decimal(a)) if ok else math.nan
                      for a, b, ok in zip(before, texts[first:], positive.tolist(), strict=True)]
        else:
            # math.log, not np.log: numpy's SIMD log can differ from the C library's in the last bit, and the returns must
            # be the row path's. map over the positive ratios alone is the fast form of that (10 ms for 200,000).
            logs = np.full(len(c), math.nan)
            logs[positive] = np.fromiter(map(math.log, (c[positive] / prev[positive]).tolist()), dtype=np.float64)
            values = logs.tobytes()
        self.returns.frombytes(values) if isinstance(values, bytes) else self.returns.extend(values)

    def _zero_runs(self, zero: np.ndarray, start: int, ts: np.ndarray) -> None:
        """Runs of zero volume: a finding at a run's first bar when the run ends RUN or more bars long."""
        m = len(zero)
        was = np.empty(m, dtype=bool)
        was[1:] = zero[:-1]
        was[0] = self.zero_length > 0
        carried, begin = self.zero_length, 0  # a run going on from the blocks before starts here at 0
        for i in np.flatnonzero(zero != was).tolist():  # where a run starts or ends
            if zero[i]:
                self.zero_start, carried, begin = (start + i, int(ts[i])), 0, i
            else:
                length = carried + i - begin
                if length >= self.run:
                    self._add("zero_volume_runs", *self.zero_start, f"{length} consecutive bars with zero volume")
                self.zero_start, carried = None, 0
        self.zero_length = carried + m - begin if self.zero_start is not None else 0

    def end(self) -> None:
        if self.zero_length >= self.run:
            self._add("zero_volume_runs", *self.zero_start, f"{self.zero_length} consecutive bars with zero volume")


class Scan:
    """evaluate_blocks' pass over the blocks, fed by a caller that has them in hand (tc data import, while it writes
    bars.csv): `block` for each in order; `done` is False once a block is not one the columnar path reads exactly."""

    def __init__(self, interval_seconds: int, settings: Settings) -> None:
        self.interval_seconds, self.settings = interval_seconds, settings
        self.state: _Scan | None = _Scan(interval_seconds, settings.zero_volume_run)
        self.done = False

    def block(self, cols: Columns) -> None:
        if self.state is None:
            return
        try:
            self.state.block(cols)
        except _NotColumnar:
            self.state = None

    def give_up(self) -> None:
        """A block not at hand as columns: evaluate_blocks reads bars.csv."""
        self.state = None

    def end(self) -> None:
        if self.state is not None:
            self.state.end()
            self.done = True


def evaluate_blocks(blocks: Callable[[], Iterator[Columns]], rows: Callable[[], Iterable[Row]], dataset_id: str, fingerprint: str,
                    interval_seconds: int, settings: Settings, scanned: Scan | None = None) -> dict[str, Any]:
    """evaluate's document, computed with numpy over the blocks BLOCKS() yields (or SCANNED, a Scan already fed them
    all); the row path (ROWS) when a block is not one the columnar path reads exactly."""
    if scanned is not None and scanned.done and (scanned.interval_seconds, scanned.settings) == (interval_seconds, settings):
        scan = scanned.state
    else:
        scan = _Scan(interval_seconds, settings.zero_volume_run)
        try:
            for cols in blocks():
                scan.block(cols)
        except _NotColumnar:
            return evaluate(rows, dataset_id, fingerprint, interval_seconds, settings)
        scan.end()
    held = [scan.returns]
    del scan.returns
    return _document(scan.found, held, scan.n, lambda first: _outlier_examples(blocks, first), dataset_id, fingerprint,
                     interval_seconds, settings)


def _outlier_examples(blocks: Callable[[], Iterator[Columns]], first: list[tuple[int, float]]) -> list[dict[str, Any]]:
    wanted = {i + 1: z for i, z in first}  # pair i is (row i, row i + 1): the example is row i + 1
    out, start, prev = [], 0, None
    last = max(wanted)
    for cols in blocks():
        m = len(cols.ts)
        closes = cols.texts[3]
        for i in sorted(k - start for k in wanted if start <= k < start + m):
            before = closes[i - 1].as_py() if i else prev
            out.append(_finding(Row(start + i + 2, int(cols.ts[i]), *([Decimal(0)] * 5)),
                                f"close {Decimal(closes[i].as_py())} after {Decimal(before)}: robust z-score {wanted[start + i]:.1f}"))
        if m:
            prev = closes[m - 1].as_py()
        start += m
        if start > last:
            break
    return out
