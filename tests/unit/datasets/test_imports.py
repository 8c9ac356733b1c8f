"""datasets/imports.py's vectorized pieces against what they replace."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from opslab.datasets import imports


def test_iso_seconds_is_strftimes_text_over_tcs_whole_range():
    rng = random.Random(5)
    edges = [imports.FIRST_TIME, 1, 59, 60, 951_782_400, 4_102_444_800, imports.END_TIME - 1]
    values = edges + [rng.randrange(imports.FIRST_TIME, imports.END_TIME) for _ in range(20_000)]
    got = imports.iso_seconds(pa.array(values, pa.int64())).to_pylist()
    assert got == pc.strftime(pc.cast(pa.array(values, pa.int64()), pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    assert got == [datetime.fromtimestamp(v, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for v in values]


@pytest.mark.parametrize("step", [Decimal("1"), Decimal("0.01"), Decimal("0.000001"), Decimal("0.00000001")])
def test_block_text_rounds_the_exact_decimals_half_even_as_before(step):
    """canonical_decimals (one exact cast, rounding only where a digit is dropped) gives the texts of rounding every
    value (pyarrow, half-even): those of Decimal.quantize, but for a negative value that rounds to zero (pyarrow's 0.00,
    Decimal's -0.00), as before; from the text as from the exact decimals."""
    rng = random.Random(str(step))
    texts = ["0", "0.005", "0.015", "0.025", "-0.005", "2.5", "3.5", "-2.5", "0.000000005", "0.000000015", "12345678901234567890.5",
             "1234567890123456789.999999999999999999"]
    texts += [f"{rng.randint(-10**6, 10**6)}.{rng.randint(0, 10**9):09d}" for _ in range(2000)]
    exact = pc.cast(pa.array(texts), pa.decimal128(38, 18))
    canonical = imports.canonical_decimals(exact, step)
    assert canonical.equals(imports.canonical_decimals(pa.array(texts), step))
    block = imports.Block(pa.array([0] * len(texts), pa.int64()), prices=[canonical] * 5)
    lines = block.text.decode().splitlines()
    scale = -step.as_tuple().exponent
    before = pc.cast(pc.cast(pc.round(exact, ndigits=scale, round_mode="half_to_even"), pa.decimal128(38, scale)), pa.string())
    assert [line.split(",")[1] for line in lines] == before.to_pylist()
    assert [Decimal(line.split(",")[1]) for line in lines] == [Decimal(imports._number(t, step)) for t in texts]
