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


# The other symbols the venue lists (no dataset replays them: a static book around REFERENCE_PRICE, docs/node.md).
# Each one's full definition (NautilusTrader CurrencyPair.to_dict) is fixtures/instruments/<symbol>-binance-spot.json;
# a test checks that these fields agree with it. Binance's ETHUSDT filters: tick 0.01, step 0.0001, min notional 5.
LISTED = {
    "ETHUSDT": {"base": "ETH", "quote": QUOTE, "price_increment": "0.01", "size_increment": "0.0001", "min_price": "0.01",
                "max_price": "1000000.00", "min_quantity": "0.0001", "max_quantity": "9000.0000", "min_notional": "5.00",
                "max_notional": "9000000.00", "reference_price": "2300.00"},
}


def instrument_id(spec_data: dict[str, Any]) -> str:
    """The instrument id a normalized spec trades (its instrument and venue fields)."""
    return f"{spec_data['instrument']}.{spec_data['venue']}"
