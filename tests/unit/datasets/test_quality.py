"""quality.evaluate_blocks (numpy over blocks of columns) gives exactly evaluate's document (a Python Row per bar)."""

from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from opslab.datasets import quality

START = 1_704_067_200


def _rows(texts: list[tuple[int, str, str, str, str, str]]) -> list[quality.Row]:
    return [quality.Row(i + 2, ts, *(Decimal(v) for v in values)) for i, (ts, *values) in enumerate(texts)]


def _blocks(texts: list[tuple[int, str, str, str, str, str]], sizes: list[int]):
    def blocks():
        start = 0
        for size in sizes:
            part = texts[start:start + size]
            start += size
            yield quality.Columns(np.array([t[0] for t in part], dtype=np.int64),
                                  [pa.array([t[k] for t in part], pa.string()) for k in range(1, 6)])
    return blocks


def _both(texts, sizes, settings=None, columnar=True):
    """(evaluate's document, evaluate_blocks'); COLUMNAR: evaluate_blocks must not fall back to the rows."""
    settings = settings or quality.Settings(zscore=3.0)
    rows = _rows(texts)
    slow = quality.evaluate(lambda: iter(rows), "d", "sha256:x", 60, settings)

    def fallback():
        assert not columnar, "evaluate_blocks fell back to the row path"
        return iter(rows)

    fast = quality.evaluate_blocks(_blocks(texts, sizes), fallback, "d", "sha256:x", 60, settings)
    return slow, fast


def _series(rng: random.Random, n: int, decimals: int = 2, volume_decimals: int = 6) -> list[tuple[int, str, str, str, str, str]]:
    """N bars with every kind of finding: steps back, repeats, gaps, bad OHLC, zero and negative prices, zero-volume
    runs of every length, jumps."""
    def money(v: int, d: int) -> str:
        sign = "-" if v < 0 else ""
        v = abs(v)
        return f"{sign}{v // 10**d}.{v % 10**d:0{d}d}" if d else f"{sign}{v}"

    out, ts, price = [], START, 6_100_000
    for _ in range(n):
        r = rng.random()
        ts += 60 if r > 0.1 else rng.choice([0, -60, -600, 120, 600, 3600])
        price = max(-5, price + rng.randint(-3000, 3000) if rng.random() > 0.01 else rng.choice([price * 3, price // 4, 0, -100]))
        o, c = price, price + rng.randint(-500, 500)
        h, lo = max(o, c) + rng.randint(0, 50), min(o, c) - rng.randint(0, 50)
        if rng.random() < 0.03:
            h, lo = lo, h
        vol = 0 if rng.random() < 0.3 else rng.randint(1, 5 * 10**volume_decimals)
        out.append((ts, money(o, decimals), money(h, decimals), money(lo, decimals), money(c, decimals), money(vol, volume_decimals)))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_the_columnar_checks_find_what_the_row_checks_find(seed):
    rng = random.Random(seed)
    texts = _series(rng, rng.randint(1, 3000), decimals=rng.choice([0, 2, 8]), volume_decimals=rng.choice([0, 3, 6]))
    sizes, left = [], len(texts)
    while left:
        sizes.append(min(left, rng.choice([1, 2, 3, 7, 100, 1000])))
        left -= sizes[-1]
    settings = quality.Settings(zscore=rng.choice([1.0, 3.0, 10.0]), zero_volume_run=rng.choice([1, 2, 3, 5]),
                                max_counts={"gaps": 3})
    slow, fast = _both(texts, sizes, settings)
    assert fast == slow
    assert sum(c["count"] for c in slow["checks"]) > 0 or len(texts) < 10  # the series does exercise the checks


def test_every_check_fires_and_the_documents_are_equal():
    texts = _series(random.Random(99), 5000)
    slow, fast = _both(texts, [1234, 1, 2000, 1765])
    assert fast == slow
    assert all(c["count"] and c["examples"] for c in slow["checks"]), [c["name"] for c in slow["checks"] if not c["count"]]


def test_a_zero_volume_run_across_blocks_and_at_the_end():
    texts = [(START + 60 * i, "1.00", "1.00", "1.00", "1.00", "0.0" if i in range(2, 9) or i >= 14 else "1.5") for i in range(20)]
    for sizes in ([20], [3, 3, 3, 3, 3, 5], [1] * 20, [9, 11]):
        slow, fast = _both(texts, sizes, quality.Settings(zero_volume_run=3))
        assert fast == slow
        runs = next(c for c in slow["checks"] if c["name"] == "zero_volume_runs")
        assert runs["count"] == 2 and [e["line"] for e in runs["examples"]] == [4, 16]


@pytest.mark.parametrize("odd, columnar", [("1E-8", False), ("1.5", False), ("12345678901234567890.00", False), ("-0.00", True),
                                           ("0E-7", False)])
def test_a_block_the_columnar_path_cannot_read_exactly_goes_the_row_way(odd, columnar):
    texts = _series(random.Random(7), 300)
    ts, o, h, lo, c, v = texts[150]
    texts[150] = (ts, o, h, lo, odd, odd if odd == "0E-7" else v)
    slow, fast = _both(texts, [100, 100, 100], columnar=columnar)
    assert fast == slow


def test_large_prices_take_the_exact_decimal_ratio():
    # closes above 2^34 in integer form: the returns are computed from the decimals, as the row path does
    texts = [(START + 60 * i, p, p, p, p, "1.0") for i, p in
             enumerate(["123456789.01", "123456789.02", "923456789.03", "123456789.04", "123456789.05", "1.00"])]
    slow, fast = _both(texts, [2, 4], quality.Settings(zscore=0.5))
    assert fast == slow
