"""reconcile.compare on positions: a perpetual's entry price is compared within its tolerance (issue 32 item 3); a Spot
position, which has none on either side, gets no entry price check."""

from __future__ import annotations

from decimal import Decimal

import pytest

from opslab import reconcile


def _state(*positions: dict) -> dict:
    return {"positions": list(positions), "open_orders": [], "balances": {"USDT": "100"}}


def _position(**fields: str) -> dict:
    return {"instrument": "BTCUSDT-PERP.BINANCE", "side": "SHORT", "quantity": "0.01", **fields}


def _entry(checks: list[dict]) -> list[tuple[str, str | None]]:
    return [(c["status"], c["difference"]) for c in checks if c["field"] == "entry_price"]


@pytest.mark.parametrize("venue, node, expected", [
    ("42082.9", "42082.9", [("match", "0")]),
    ("42082.9", "42082.905", [("match", "0.005")]),  # within the default 0.01
    ("42082.9", "42083", [("mismatch", "0.1")]),
])
def test_a_perpetuals_entry_price_is_compared_within_its_tolerance(venue, node, expected):
    checks = reconcile.compare(_state(_position(entry_price=venue)), _state(_position(entry_price=node)), Decimal(0), Decimal("0.01"))
    assert _entry(checks) == expected


def test_an_entry_price_on_one_side_only_is_a_mismatch():
    checks = reconcile.compare(_state(_position(entry_price="42082.9")), _state(_position()), Decimal(0), Decimal("0.01"))
    assert [(c["status"], c["expected"], c["observed"]) for c in checks if c["field"] == "entry_price"] == [("mismatch", "42082.9", None)]


def test_a_wider_tolerance_from_the_spec_is_used():
    checks = reconcile.compare(_state(_position(entry_price="100")), _state(_position(entry_price="100.5")), Decimal(0), Decimal(0),
                               Decimal("1"))
    assert _entry(checks) == [("match", "0.5")]


def test_a_spot_position_has_no_entry_price_check():
    spot = {"instrument": "BTCUSDT.BINANCE", "side": "LONG", "quantity": "0.01"}
    checks = reconcile.compare(_state(spot), _state(spot), Decimal(0), Decimal("0.01"))
    assert [c["field"] for c in checks if c["kind"] == "position"] == ["presence", "side", "quantity"]
