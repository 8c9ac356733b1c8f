"""The automatic soft halt's decision (engine/auto_halt.py): which streams are stale, when one is fresh again."""

from __future__ import annotations

import pytest

from opslab.engine import auto_halt
from opslab.engine.auto_halt import StreamWatch

S = 1_000_000_000  # nanoseconds in a second


def test_off_unless_the_spec_bounds_a_stream():
    assert StreamWatch.from_spec(None) is None
    assert StreamWatch.from_spec({}) is None
    assert StreamWatch.from_spec({"book_seconds": None}) is None
    watch = StreamWatch.from_spec({"market_data_seconds": 2, "book_seconds": None, "user_stream_seconds": 3.5})
    assert watch is not None and watch.bounds == {"market_data": 2.0, "user_stream": 3.5}


def test_a_stream_goes_stale_past_its_bound_once_and_fresh_when_back_within_it():
    watch = StreamWatch({"market_data": 2.0, "book": 2.0})
    assert watch.step(10 * S, {"market_data": 1.0, "book": None}, None) == []  # a book not heard yet is not stale
    assert watch.step(11 * S, {"market_data": 2.0, "book": 0.1}, None) == []  # at the bound: not past it
    [stale] = watch.step(12 * S, {"market_data": 2.5, "book": 0.1}, None)
    assert (stale.stream, stale.stale, stale.reason) == ("market_data", True, "auto: stale market_data (2.5 s > 2 s)")
    assert watch.step(13 * S, {"market_data": 3.5, "book": 0.2}, None) == []  # still stale: no second change
    assert watch.stale == {"market_data": 12 * S}
    [fresh] = watch.step(14 * S, {"market_data": 0.05, "book": 0.2}, None)
    assert (fresh.stale, fresh.reason) == (False, "auto: market_data fresh again (0.1 s <= 2 s)")
    assert watch.stale == {}


def test_the_user_stream_is_fresh_only_after_an_event_arrived_since_it_went_stale():
    watch = StreamWatch({"user_stream": 3.0})
    [stale] = watch.step(20 * S, {"user_stream": 3.2}, 10 * S)
    assert stale.stale
    # the engine's own order check settled the waiting orders (nothing waits: age 0), but the stream said nothing
    assert watch.step(21 * S, {"user_stream": 0.0}, 10 * S) == []
    assert watch.stale == {"user_stream": 20 * S}
    [fresh] = watch.step(22 * S, {"user_stream": 0.0}, 21_500_000_000)  # an event came over the stream
    assert not fresh.stale and watch.stale == {}


@pytest.mark.parametrize("waiting, last_event, age", [
    ([], None, 0.0),  # nothing waits: a quiet account's stream is silent, not stale
    ([95 * S], None, 5.0),  # one order waits since 95 s
    ([95 * S, 98 * S], 90 * S, 5.0),  # the oldest wait counts
    ([95 * S], 99 * S, 1.0),  # the stream answered something since: it is alive, counted from its last event
    ([101 * S], None, 0.0),  # clocks a little apart never give a negative age
])
def test_the_user_streams_age_counts_only_while_an_order_waits_on_it(waiting, last_event, age):
    assert auto_halt.user_stream_age(100 * S, waiting, last_event) == age
