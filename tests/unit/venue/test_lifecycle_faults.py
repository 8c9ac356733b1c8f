"""The grammar of the venue's order-lifecycle faults of issue 28's last drills (order_rate_limit, ...): seeded schedules
that parse the same every time, and one-line errors naming the syntax for anything malformed."""

from __future__ import annotations

import pytest

from opslab.venue import faults


def test_order_rate_limit_parses_its_limit_and_seeded_limit():
    assert faults.parse_faults(["order_rate_limit=3"]) == {"order_rate_limit": {"n": 3, "seed": None, "limit": 3, "window_s": 10}}
    seeded = faults.parse_faults(["order_rate_limit=5/28"])["order_rate_limit"]
    assert seeded == faults.parse_faults(["order_rate_limit=5/28"])["order_rate_limit"], "the seed draws the same limit every time"
    assert seeded["seed"] == 28 and 1 <= seeded["limit"] <= 5 and "order_rate_limit" in faults.FAULT_NAMES


@pytest.mark.parametrize("bad", ["order_rate_limit", "order_rate_limit=0", "order_rate_limit=x", "order_rate_limit=2/",
                                 "order_rate_limit=2/-1", "order_rate_limit=999999999"])
def test_a_malformed_order_rate_limit_is_one_line_naming_the_syntax(bad):
    with pytest.raises(faults.InputError, match=r"order_rate_limit=N\[/SEED\]") as err:
        faults.parse_faults([bad])
    assert "\n" not in str(err.value)


def count(ten_s: int, day: int) -> dict[str, str]:
    return {"X-MBX-ORDER-COUNT-10S": str(ten_s), "X-MBX-ORDER-COUNT-1D": str(day)}


def test_order_rate_limit_counts_per_ten_second_interval_and_refuses_beyond_it(monkeypatch):
    state = faults.VenueState()
    now = [1_700_000_000_000.0]
    monkeypatch.setattr(faults.time, "time", lambda: now[0] / 1000)
    order = {"client_order_id": "O-1", "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"}
    assert faults.count_order(state, order) == (count(1, 1), None), "counted without the fault too"
    faults.apply(state, faults.parse_faults(["order_rate_limit=2"]))
    assert faults.count_order(state, order) == (count(2, 2), None), "switching it on keeps the interval's count"
    headers, refused = faults.count_order(state, order)
    assert headers == count(2, 2), "a refused order is not counted"
    assert refused == (429, {"code": -1015, "msg": "Too many new orders; current limit is 2 orders per TEN_SECONDS."})
    assert [(r["count"], r["limit"], r["window_start_ms"], r["client_order_id"]) for r in state.orders_refused] == \
        [(2, 2, 1_700_000_000_000, "O-1")]
    now[0] += 10_000  # the next interval starts afresh, the day goes on
    assert faults.count_order(state, order) == (count(1, 3), None)
    faults.apply(state, {})
    assert all(faults.count_order(state, order)[1] is None for _ in range(5))


def test_user_stream_expiry_parses_its_seeded_schedule_and_silent_mode():
    assert faults.parse_faults(["user_stream_expiry=2"]) == {"user_stream_expiry": {"n": 2, "seed": None, "schedule": [2], "silent": False}}
    assert faults.parse_faults(["user_stream_expiry=1@silent"])["user_stream_expiry"]["silent"] is True
    seeded = faults.parse_faults(["user_stream_expiry=3/28"])["user_stream_expiry"]
    assert seeded == faults.parse_faults(["user_stream_expiry=3/28"])["user_stream_expiry"] and 1 <= seeded["schedule"][0] <= 3
    for bad in ("user_stream_expiry", "user_stream_expiry=0", "user_stream_expiry=1@loud", "user_stream_expiry=1@", "user_stream_expiry=x"):
        with pytest.raises(faults.InputError, match=r"user_stream_expiry=N\[/SEED\]\[@silent\]") as err:
            faults.parse_faults([bad])
        assert "\n" not in str(err.value)


def test_user_stream_expiry_ends_the_stream_once_before_the_scheduled_event():
    state = faults.VenueState()
    assert faults.end_user_stream(state, {"e": "executionReport"}) is None, "nothing without the fault"
    faults.apply(state, faults.parse_faults(["user_stream_expiry=2"]))
    assert faults.end_user_stream(state, {"e": "executionReport"}) is None
    record = faults.end_user_stream(state, {"e": "outboundAccountPosition"})
    assert record is not None and (record["event"], record["event_type"], record["silent"], record["seed"]) == (2, "outboundAccountPosition", False, None)
    faults.ended(state, record, 1, 0)
    assert state.user_streams_ended == [{**record, "subscriptions": 1}] and state.user_streams_ended_total == 1
    assert all(faults.end_user_stream(state, {"e": "executionReport"}) is None for _ in range(5)), "once"


def test_cancel_fill_race_parses_its_seeded_schedule_and_races_the_scheduled_cancel_once():
    assert faults.parse_faults(["cancel_fill_race=1"]) == {"cancel_fill_race": {"n": 1, "seed": None, "schedule": [1]}}
    seeded = faults.parse_faults(["cancel_fill_race=4/28"])["cancel_fill_race"]
    assert seeded == faults.parse_faults(["cancel_fill_race=4/28"])["cancel_fill_race"] and 1 <= seeded["schedule"][0] <= 4
    for bad in ("cancel_fill_race", "cancel_fill_race=0", "cancel_fill_race=x", "cancel_fill_race=1/"):
        with pytest.raises(faults.InputError, match=r"cancel_fill_race=N\[/SEED\]") as err:
            faults.parse_faults([bad])
        assert "\n" not in str(err.value)
    state = faults.VenueState()
    cancel = {"request": "DELETE /api/v3/order", "order_ids": [7], "client_order_ids": ["O-7"]}
    assert faults.race_cancel(state, cancel) is None, "nothing without the fault"
    faults.apply(state, faults.parse_faults(["cancel_fill_race=2"]))
    assert faults.race_cancel(state, cancel) is None
    raced = faults.race_cancel(state, cancel)
    assert raced is not None and (raced["cancel"], raced["order_ids"], raced["seed"]) == (2, [7], None)
    assert state.cancels_raced == [raced] and faults.race_cancel(state, cancel) is None
