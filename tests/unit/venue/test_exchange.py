"""The venue's order parameters are Binance's strict enums and decimals: anything else is refused with
Binance's error code and changes nothing."""

from __future__ import annotations

import pytest

from opslab.venue import exchange


@pytest.fixture
def venue():
    """An in-memory exchange (nothing persisted) with no bars replayed yet."""
    return exchange.Exchange("t", "d", [], {"USDT": "1000"}, 1.0, None, lambda *a: None, dict)


@pytest.mark.parametrize("tif", ["XYZ", "gtc", "", "GTX", "GTC "])
def test_an_unknown_time_in_force_is_refused_with_1115(venue, tif):
    before = repr(venue.state)
    with pytest.raises(exchange.VenueError) as err:
        venue.place("BUY", "LIMIT", "0.001", "42000.00", tif, None)
    assert (err.value.status, err.value.code, err.value.msg) == (400, -1115, "Invalid timeInForce.")
    assert repr(venue.state) == before


def test_a_known_time_in_force_passes_the_enum_check(venue):
    for tif in exchange.TIFS:  # refused later for another reason (a LOT_SIZE), never as an invalid timeInForce
        with pytest.raises(exchange.VenueError) as err:
            venue.place("BUY", "LIMIT", "0.00000001", "42000.00", tif, None)
        assert err.value.code == -1013


@pytest.mark.parametrize("quantity, code", [("NaN", -1100), ("Infinity", -1100), ("-1", -1100), ("1e30", -1100),
                                             ("1000000000000000000000000000000", -1100), ("99999999999999999999", -1013), ("0.000000001", -1111)])
def test_non_finite_or_huge_quantities_are_refused(venue, quantity, code):
    before = repr(venue.state)
    with pytest.raises(exchange.VenueError) as err:
        venue.place("BUY", "LIMIT", quantity, "42000.00", "GTC", None)
    assert err.value.code == code and repr(venue.state) == before
