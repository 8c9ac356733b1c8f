"""What the lab trades: one instrument, named once (its id, symbol, currencies and bar type).

Everything that spells the instrument reads it here: the engine, the venue, the datasets, the drills.
"""

from __future__ import annotations

from typing import Any

VENUE = "BINANCE"
BASE, QUOTE = "BTC", "USDT"
SYMBOL = BASE + QUOTE
INSTRUMENT_ID = f"{SYMBOL}.{VENUE}"
BAR_TYPE = f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL"


def instrument_id(spec_data: dict[str, Any]) -> str:
    """The instrument id a normalized spec trades (its instrument and venue fields)."""
    return f"{spec_data['instrument']}.{spec_data['venue']}"
