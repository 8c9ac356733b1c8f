"""Instrument definitions a user gives (`tc data import --instrument-file`): read bounded and strictly,
checked against schemas/instrument.schema.json, the lab's limits, then NautilusTrader's own checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from opslab import contracts, fs, market
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError

MAX_BYTES = 64 << 10  # a definition is about 1 KB


def read_file(path: Path | str) -> dict[str, Any]:
    """The definition in PATH as tc stores it (instrument.json); InputError `PATH: /field: expected ...`. Any Binance spot
    pair (a CurrencyPair on BINANCE whose symbol is its base and quote, as Binance names them: SOLUSDT is SOL and USDT);
    the file brings its real precisions, increments, limits and fees. A backtest and a paper run trade it; a live node
    trades what the lab's venue lists (market.SYMBOLS)."""
    label = str(path)
    doc = fs.parse_json(fs.read_input(path, "instrument definition (JSON)", limit=MAX_BYTES), label)
    problems = contracts.errors_for("instrument", doc, label)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
    symbol, _, venue = doc["id"].rpartition(".")
    # a symbol a RunSpec's instrument may name: the runspec schema's pattern, the one place it is spelled
    if venue != market.VENUE or not re.fullmatch(contracts.load_schema("runspec")["properties"]["instrument"]["pattern"], symbol):
        raise InputError(f"{label}: /id: expected a Binance spot symbol on {market.VENUE} (SYMBOL.{market.VENUE}, e.g. "
                         f"SOLUSDT.{market.VENUE}), got {doc['id']!r}")
    if doc["raw_symbol"] != symbol:
        raise InputError(f"{label}: /raw_symbol: expected {symbol!r} (the symbol of its id), got {doc['raw_symbol']!r}")
    if doc["base_currency"] + doc["quote_currency"] != symbol:
        raise InputError(f"{label}: /base_currency: {doc['base_currency']!r} then /quote_currency {doc['quote_currency']!r} do not "
                         f"spell {symbol} (Binance names a pair by its base currency, then its quote currency)")
    from opslab.engine import instruments

    instruments.build(doc, label)
    return {**doc, "schema_version": SCHEMA_VERSION}
