"""The venue's partial_fills and duplicate_reports faults (issue 28) with real clients on 127.0.0.1, on both profiles: the
listenKey stream (profile 2025, binance-connector's SpotWebsocketStreamClient) and the WebSocket API subscription (profile
2026, a `websockets` client: session.logon + userDataStream.subscribe); orders placed and read back with binance-connector.
partial_fills: a market order fills in parts, each its own trade and TRADE report (PARTIALLY_FILLED, then FILLED), REST
showing the cumulative state in between. duplicate_reports: one fill's executionReport arrives twice, the trade is one.
Switched at start and over POST /admin/faults; the seeded schedules and what they did are recorded (GET /admin/faults,
stats.json)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from opslab.venue import faults
from opslab.venue.server import BinanceVenue
from venue_clients import (CLIENT_WARNINGS, QTY, SYMBOL, admin, ask, buy, close_stream, execution_reports, listen_key_stream, signed, spot_fixture,  # noqa: F401 (the fixture spot)
                            with_price, ws_api_events, ws_api_user_stream)
from venue_spec import node_spec_fixture

pytestmark = [pytest.mark.integration, *CLIENT_WARNINGS]
GAP_S = faults.PARTIAL_GAP_MS / 1000


node_spec = node_spec_fixture("order-faults-test")


# --- parsing -----------------------------------------------------------------------------------
def test_partial_fills_and_duplicate_reports_parse_their_seeded_schedules():
    assert faults.parse_faults(["partial_fills=30/40/30"]) == {"partial_fills": {"split": [30, 40, 30], "seed": None, "schedule": None,
                                                                                 "gap_ms": faults.PARTIAL_GAP_MS}}
    seeded = faults.parse_faults(["partial_fills=30/40/30@28"])["partial_fills"]
    assert seeded == faults.parse_faults(["partial_fills=30/40/30@28"])["partial_fills"] and seeded["seed"] == 28
    assert seeded["schedule"] and set(seeded["schedule"]) <= set(range(1, faults.PARTIAL_SPAN + 1))
    assert faults.parse_faults(["duplicate_reports=4"]) == {"duplicate_reports": {"n": 4, "seed": None, "schedule": [4]}}
    assert 1 <= faults.parse_faults(["duplicate_reports=5/28"])["duplicate_reports"]["schedule"][0] <= 5
    for bad in ("partial_fills", "partial_fills=100", "partial_fills=50/40", "partial_fills=0/100", "partial_fills=50/50@",
                "partial_fills=50/50@-1", "partial_fills=x/y", "partial_fills=" + "/".join(["9"] * 11 + ["1"])):
        with pytest.raises(faults.InputError, match=r"partial_fills=P1/P2/\.\.\.\[@SEED\]") as err:
            faults.parse_faults([bad])
        assert "\n" not in str(err.value)
    for bad in ("duplicate_reports", "duplicate_reports=0", "duplicate_reports=2/", "duplicate_reports=99999"):
        with pytest.raises(faults.InputError, match=r"duplicate_reports=N\[/SEED\]"):
            faults.parse_faults([bad])
    assert {"partial_fills", "duplicate_reports"} <= set(faults.FAULT_NAMES)
    assert "partial_fills=P1/P2/...[@SEED]" in faults.usage() and "duplicate_reports=N[/SEED]" in faults.usage()


# --- partial_fills -----------------------------------------------------------------------------
def test_listen_key_stream_gets_one_report_per_part_while_rest_shows_the_cumulative_state(node_spec, spot):
    """Profile 2025, switched at runtime: partial_fills=30/40/30 fills a market buy in three trades, GAP_S apart."""
    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            assert admin(v, "POST", {"faults": ["partial_fills=30/40/30"]})["faults"]["partial_fills"]["split"] == [30, 40, 30]
            placed = buy(s, "O-pf-1")
            assert (placed["status"], placed["executedQty"]) == ("PARTIALLY_FILLED", "0.003000")  # the answer: the first part only
            assert [f["qty"] for f in placed["fills"]] == ["0.003000"]
            mid = s.get_order(SYMBOL, orderId=placed["orderId"])
            assert (mid["status"], mid["executedQty"]) == ("PARTIALLY_FILLED", "0.003000")
            assert v.counters.document()["orders"] == {"open": 1, "partially_filled": 1}
            seen = execution_reports(got, 2 * GAP_S + 1.5)
        finally:
            close_stream(ws)
        assert [(e["x"], e["X"], e["l"], e["z"]) for e in seen] == [
            ("NEW", "NEW", "0.000000", "0.000000"), ("TRADE", "PARTIALLY_FILLED", "0.003000", "0.003000"),
            ("TRADE", "PARTIALLY_FILLED", "0.004000", "0.007000"), ("TRADE", "FILLED", "0.003000", "0.010000")], seen
        trades = s.my_trades(SYMBOL, orderId=placed["orderId"])
        assert [t["qty"] for t in trades] == ["0.003000", "0.004000", "0.003000"]
        assert [t["id"] for t in trades] == [e["t"] for e in seen[1:]] and len({t["id"] for t in trades}) == 3
        assert trades[2]["time"] - trades[0]["time"] >= 2 * GAP_S * 1000 - 50, "the parts are spaced by the gap"
        done = s.get_order(SYMBOL, orderId=placed["orderId"])
        assert (done["status"], done["executedQty"]) == ("FILLED", QTY)
        assert Decimal(done["cummulativeQuoteQty"]) == sum(Decimal(t["quoteQty"]) for t in trades)
        split = admin(v, "GET")["partial_fills"]
        assert [(r["order"], r["order_id"], r["client_order_id"], r["split"], r["seed"], r["schedule"]) for r in split] == \
            [(1, placed["orderId"], "O-pf-1", [30, 40, 30], None, None)]
        doc = v.counters.document()
        assert doc["partial_fills"] == split and doc["orders"] == {"open": 0, "partially_filled": 0} and doc["faults_active"] == ["partial_fills"]
        assert doc["trades"]["account"] == 3
    finally:
        v.stop()


def test_ws_api_subscription_splits_the_orders_the_seed_chose(node_spec, spot):
    """Profile 2026 (the WebSocket API user stream), switched at start with a seed: only the scheduled orders fill in parts."""
    fault = faults.parse_faults(["partial_fills=50/50@1"])
    schedule = fault["partial_fills"]["schedule"]
    assert 1 in schedule and 2 not in schedule and 3 not in schedule  # seed 1 chooses the first of these three orders
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            placed = [buy(s, f"O-api-{i}") for i in (1, 2, 3)]
            seen = execution_reports(ws_api_events(ws, GAP_S + 1.5), 0.1)
        trade_reports = [(e["c"], e["X"], e["l"]) for e in seen if e["x"] == "TRADE"]
        assert sorted(trade_reports) == sorted([("O-api-1", "PARTIALLY_FILLED", "0.005000"), ("O-api-1", "FILLED", "0.005000"),
                                                ("O-api-2", "FILLED", QTY), ("O-api-3", "FILLED", QTY)]), trade_reports
        assert [len(s.my_trades(SYMBOL, orderId=p["orderId"])) for p in placed] == [2, 1, 1]
        split = admin(v, "GET")["partial_fills"]
        assert [(r["order"], r["client_order_id"], r["seed"], r["schedule"]) for r in split] == [(1, "O-api-1", 1, schedule)]
    finally:
        v.stop()


# --- duplicate_reports -------------------------------------------------------------------------
def test_listen_key_stream_gets_the_nth_fill_report_twice_and_one_trade(node_spec, spot):
    """Profile 2025, switched at runtime: duplicate_reports=2 sends the second fill's TRADE report twice, the same message."""
    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            assert admin(v, "POST", {"faults": ["duplicate_reports=2"]})["faults"] == {"duplicate_reports": {"n": 2, "seed": None, "schedule": [2]}}
            placed = [buy(s, f"O-dup-{i}") for i in (1, 2, 3)]
            seen = execution_reports(got, 2.0)
        finally:
            close_stream(ws)
        assert [(e["c"], e["x"]) for e in seen] == [("O-dup-1", "NEW"), ("O-dup-1", "TRADE"), ("O-dup-2", "NEW"), ("O-dup-2", "TRADE"),
                                                   ("O-dup-2", "TRADE"), ("O-dup-3", "NEW"), ("O-dup-3", "TRADE")], seen
        assert seen[3] == seen[4], "the duplicate is the same message"
        assert [t["id"] for t in s.my_trades(SYMBOL, orderId=placed[1]["orderId"])] == [seen[3]["t"]], "one trade in the record"
        state = admin(v, "GET")
        dup = state["reports_duplicated"]
        assert [(d["fill"], d["order_id"], d["client_order_id"], d["trade_id"], d["seed"]) for d in dup] == \
            [(2, placed[1]["orderId"], "O-dup-2", seen[3]["t"], None)]
        doc = v.counters.document()
        assert doc["trades"] == {"account": 3, "reports_withheld": 0, "reports_duplicated": 1} and doc["reports_duplicated"] == dup
    finally:
        v.stop()


def test_ws_api_subscription_gets_the_seeded_fill_report_twice(node_spec, spot):
    """Profile 2026, switched at start with a seed; cleared over DELETE /admin/faults, the record stays."""
    fault = faults.parse_faults(["duplicate_reports=3/28"])
    nth = fault["duplicate_reports"]["schedule"][0]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            [buy(s, f"O-api-{i}") for i in (1, 2, 3)]
            seen = execution_reports(ws_api_events(ws, 2.0), 0.1)
        trades = [(e["c"], e["t"]) for e in seen if e["x"] == "TRADE"]
        expected = [f"O-api-{i}" for i in (1, 2, 3) for _ in range(2 if i == nth else 1)]
        assert [c for c, _ in trades] == expected, (nth, trades)
        dup = admin(v, "GET")["reports_duplicated"]
        assert [(d["fill"], d["client_order_id"], d["seed"], d["n"]) for d in dup] == [(nth, f"O-api-{nth}", 28, 3)]
        admin(v, "DELETE")
        buy(s, "O-api-4")
        assert admin(v, "GET")["reports_duplicated"] == dup, "the record outlives the fault"
        assert v.counters.document()["trades"] == {"account": 4, "reports_withheld": 0, "reports_duplicated": 1}
    finally:
        v.stop()


# --- reorder_reports ---------------------------------------------------------------------------
def test_reorder_reports_parses_its_seeded_schedule():
    assert faults.parse_faults(["reorder_reports=2"]) == {"reorder_reports": {"n": 2, "seed": None, "schedule": [2]}}
    assert 1 <= faults.parse_faults(["reorder_reports=4/28"])["reorder_reports"]["schedule"][0] <= 4
    for bad in ("reorder_reports", "reorder_reports=0", "reorder_reports=1/", "reorder_reports=a"):
        with pytest.raises(faults.InputError, match=r"reorder_reports=N\[/SEED\]"):
            faults.parse_faults([bad])
    assert "reorder_reports=N[/SEED]" in faults.usage()


def test_listen_key_stream_gets_the_nth_orders_fill_before_its_acknowledgement(node_spec, spot):
    """Profile 2025, switched at runtime: reorder_reports=2 sends the second order's TRADE report before its NEW one."""
    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            assert admin(v, "POST", {"faults": ["reorder_reports=2"]})["faults"] == {"reorder_reports": {"n": 2, "seed": None, "schedule": [2]}}
            placed = [buy(s, f"O-ro-{i}") for i in (1, 2, 3)]
            seen = execution_reports(got, 2.0)
        finally:
            close_stream(ws)
        assert [(e["c"], e["x"], e["X"]) for e in seen] == [
            ("O-ro-1", "NEW", "NEW"), ("O-ro-1", "TRADE", "FILLED"),
            ("O-ro-2", "TRADE", "FILLED"), ("O-ro-2", "NEW", "NEW"),  # the fill first, then the acknowledgement, as it was at placing
            ("O-ro-3", "NEW", "NEW"), ("O-ro-3", "TRADE", "FILLED")], seen
        assert seen[3]["z"] == "0.000000" and seen[3]["E"] <= seen[2]["E"], "the held NEW report is the one made when the order was placed"
        assert placed[1]["status"] == "FILLED" and len(s.my_trades(SYMBOL, orderId=placed[1]["orderId"])) == 1, "the record is as ever"
        reordered = admin(v, "GET")["reports_reordered"]
        assert [(r["order"], r["order_id"], r["client_order_id"], r["seed"]) for r in reordered] == [(2, placed[1]["orderId"], "O-ro-2", None)]
        assert v.counters.document()["reports_reordered"] == reordered
    finally:
        v.stop()


def test_ws_api_subscription_gets_the_seeded_orders_reports_out_of_order(node_spec, spot):
    """Profile 2026, switched at start with a seed; a limit order that rests (nothing fills now) is not counted."""
    fault = faults.parse_faults(["reorder_reports=3/28"])
    nth = fault["reorder_reports"]["schedule"][0]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            low = str((Decimal(v.exchange.last_price) * Decimal("0.5")).quantize(Decimal("0.01")))
            s.new_order(SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity=QTY, price=low, newClientOrderId="O-rest")
            [buy(s, f"O-api-{i}") for i in (1, 2, 3)]
            seen = execution_reports(ws_api_events(ws, 2.0), 0.1)
        kinds = {c: [e["x"] for e in seen if e["c"] == c] for c in ["O-rest"] + [f"O-api-{i}" for i in (1, 2, 3)]}
        assert kinds == {"O-rest": ["NEW"], **{f"O-api-{i}": (["TRADE", "NEW"] if i == nth else ["NEW", "TRADE"]) for i in (1, 2, 3)}}, (nth, kinds)
        assert [(r["order"], r["client_order_id"], r["seed"], r["n"]) for r in admin(v, "GET")["reports_reordered"]] == [(nth, f"O-api-{nth}", 28, 3)]
    finally:
        v.stop()
