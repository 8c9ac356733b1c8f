"""Instrument definitions in NautilusTrader's own dict form (CurrencyPair.to_dict / from_dict)."""

from __future__ import annotations

from decimal import InvalidOperation
from typing import Any

from typing import TYPE_CHECKING, Callable

from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError

if TYPE_CHECKING:
    from nautilus_trader.model.instruments import CurrencyPair

MAX_BYTES = 64 << 10  # an instrument definition


def _btcusdt() -> CurrencyPair:
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    return TestInstrumentProvider.btcusdt_binance()


BUILT_IN: dict[str, Callable[[], CurrencyPair]] = {"test:BTCUSDT": _btcusdt}


def built_in(name: str) -> dict[str, Any]:
    """The definition of a built-in test instrument (e.g. test:BTCUSDT), as tc stores it: recorded for the installed
    release (engine/catalog_forms.py: no NautilusTrader import), else NautilusTrader's own CurrencyPair.to_dict."""
    from opslab.engine import catalog_forms

    forms = catalog_forms.installed()
    if forms is not None and name == catalog_forms.BUILT_IN:
        return {"schema_version": SCHEMA_VERSION, **forms.definition}
    from nautilus_trader.model.instruments import CurrencyPair

    return {"schema_version": SCHEMA_VERSION, **CurrencyPair.to_dict(BUILT_IN[name]())}


def build(definition: dict[str, Any], label: str) -> CurrencyPair:
    """The instrument of a schema-valid DEFINITION; InputError (LABEL: reason) when NautilusTrader refuses it."""
    from nautilus_trader.model.instruments import CurrencyPair

    try:
        return CurrencyPair.from_dict(definition)
    except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
        # NautilusTrader's own checks (a precision that is not its increment's, a negative size, ...)
        reason = str(exc) if not isinstance(exc, InvalidOperation) else "a value is not a decimal number"
        raise InputError(f"{label}: NautilusTrader refuses the instrument: {reason[:300]}") from None
