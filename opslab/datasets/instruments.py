"""Instrument definitions a user gives (`tc data import --instrument-file`): read bounded and strictly,
checked against schemas/instrument.schema.json, the lab's limits, then NautilusTrader's own checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opslab import contracts, fs, market
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError

MAX_BYTES = 64 << 10  # a definition is about 1 KB
# What a RunSpec can trade (schemas/runspec.schema.json: instrument, venue, starting_balances): market.SYMBOLS on
# Binance; a file brings the instrument's real precisions, increments, limits and fees.
SUPPORTED = {f"{symbol}.{market.VENUE}": {"base_currency": base, "quote_currency": quote}
             for symbol, (base, quote) in market.SYMBOLS.items()}


def read_file(path: Path | str) -> dict[str, Any]:
    """The definition in PATH as tc stores it (instrument.json); InputError `PATH: /field: expected ...`."""
    label = str(path)
    doc = fs.parse_json(fs.read_input(path, "instrument definition (JSON)", limit=MAX_BYTES), label)
    problems = contracts.errors_for("instrument", doc, label)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
    if doc["id"] not in SUPPORTED:
        raise InputError(f"{label}: /id: expected one of {', '.join(map(repr, SUPPORTED))} (the instruments a RunSpec can trade), "
                         f"got {doc['id']!r}")
    for field, expected in SUPPORTED[doc["id"]].items():
        if doc[field] != expected:
            raise InputError(f"{label}: /{field}: expected {expected!r} (the {field.replace('_', ' ')} of {doc['id']}), got {doc[field]!r}")
    from opslab.engine import instruments

    instruments.build(doc, label)
    return {**doc, "schema_version": SCHEMA_VERSION}
