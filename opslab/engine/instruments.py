"""Instrument definitions in NautilusTrader's own dict form (CurrencyPair.to_dict / from_dict)."""

from __future__ import annotations

from decimal import InvalidOperation
from typing import Any

from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError

MAX_BYTES = 64 << 10  # an instrument definition
BUILT_IN = {"test:BTCUSDT": TestInstrumentProvider.btcusdt_binance}


def built_in(name: str) -> dict[str, Any]:
    """The definition of a built-in test instrument (e.g. test:BTCUSDT), as tc stores it."""
    return {"schema_version": SCHEMA_VERSION, **CurrencyPair.to_dict(BUILT_IN[name]())}


def build(definition: dict[str, Any], label: str) -> CurrencyPair:
    """The instrument of a schema-valid DEFINITION; InputError (LABEL: reason) when NautilusTrader refuses it."""
    try:
        return CurrencyPair.from_dict(definition)
    except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
        # NautilusTrader's own checks (a precision that is not its increment's, a negative size, ...)
        reason = str(exc) if not isinstance(exc, InvalidOperation) else "a value is not a decimal number"
        raise InputError(f"{label}: NautilusTrader refuses the instrument: {reason[:300]}") from None
