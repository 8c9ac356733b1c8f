"""The venue's fill_lost fault (issue 28) with real clients on 127.0.0.1: the fill happens and stays in the venue's record
(binance-connector's my_trades and get_order show it FILLED) but its executionReport never reaches the user data stream,
on both profiles: the listenKey stream (profile 2025, binance-connector's SpotWebsocketStreamClient) and the WebSocket API
subscription (profile 2026, a `websockets` client: session.logon + userDataStream.subscribe). Switched at start and over
POST /admin/faults; its seeded schedule and what it withheld are recorded (GET /admin/faults, stats.json)."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from opslab.venue import faults
from opslab.venue.server import BinanceVenue
from venue_clients import (CLIENT_WARNINGS, SYMBOL, admin, ask, buy, close_stream, execution_reports, listen_key_stream, signed, spot_fixture,  # noqa: F401 (the fixture spot)
                            with_price, ws_api_events, ws_api_user_stream)
from venue_spec import node_spec_fixture

pytestmark = [pytest.mark.integration, *CLIENT_WARNINGS]


node_spec = node_spec_fixture("fill-lost-test")


def reports(got: "queue.Queue[dict[str, Any]]", seconds: float) -> list[tuple[str, str]]:
    """(client order id, execution type) of every executionReport that arrived within SECONDS."""
    return [(event["c"], event["x"]) for event in execution_reports(got, seconds)]


def assert_in_record(s: Any, placed: dict[str, Any]) -> None:
    """REST shows the fill whose report was withheld: the order FILLED, its trade in myTrades."""
    assert s.get_order(SYMBOL, orderId=placed["orderId"])["status"] == "FILLED"
    assert [t["orderId"] for t in s.my_trades(SYMBOL, orderId=placed["orderId"])] == [placed["orderId"]]


def test_fill_lost_parses_its_schedule_seeded_and_recorded():
    assert faults.parse_faults(["fill_lost=3"]) == {"fill_lost": {"n": 3, "seed": None, "schedule": [3]}}
    seeded = faults.parse_faults(["fill_lost=5/28"])["fill_lost"]
    assert seeded == faults.parse_faults(["fill_lost=5/28"])["fill_lost"] and 1 <= seeded["schedule"][0] <= 5 and seeded["seed"] == 28
    for bad in ("fill_lost", "fill_lost=0", "fill_lost=x", "fill_lost=2/", "fill_lost=2/-1", "fill_lost=99999"):
        with pytest.raises(faults.InputError, match="fill_lost=N"):
            faults.parse_faults([bad])
    assert "fill_lost=N[/SEED]" in faults.usage() and "fill_lost" in faults.FAULT_NAMES


def test_listen_key_stream_misses_the_nth_fill_while_rest_shows_it(node_spec, spot):
    """Profile 2025, switched at runtime: fill_lost=2 withholds the second fill's TRADE report only."""
    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            assert admin(v, "POST", {"faults": ["fill_lost=2"]})["faults"] == {"fill_lost": {"n": 2, "seed": None, "schedule": [2]}}
            placed = [buy(s, f"O-lk-{i}") for i in (1, 2, 3)]
            seen = reports(got, 2.0)
        finally:
            close_stream(ws)
        assert seen == [("O-lk-1", "NEW"), ("O-lk-1", "TRADE"), ("O-lk-2", "NEW"), ("O-lk-3", "NEW"), ("O-lk-3", "TRADE")], seen
        assert_in_record(s, placed[1])
        state = admin(v, "GET")
        lost = state["fills_lost"]
        assert [(f["fill"], f["order_id"], f["client_order_id"], f["seed"]) for f in lost] == [(2, placed[1]["orderId"], "O-lk-2", None)]
        assert lost[0]["trade_id"] == s.my_trades(SYMBOL, orderId=placed[1]["orderId"])[0]["id"] and state["fills_counted"] == 3
        doc = v.counters.document()
        assert doc["trades"] == {"account": 3, "reports_withheld": 1, "reports_duplicated": 0}
        assert doc["fills_lost"] == lost and doc["faults_active"] == ["fill_lost"]
    finally:
        v.stop()


def test_ws_api_subscription_misses_the_seeded_fill_while_rest_shows_it(node_spec, spot):
    """Profile 2026 (the WebSocket API user stream), switched at start with a seed: the scheduled fill's report is withheld."""
    fault = faults.parse_faults(["fill_lost=3/28"])
    nth = fault["fill_lost"]["schedule"][0]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            placed = [buy(s, f"O-api-{i}") for i in (1, 2, 3)]
            seen = reports(ws_api_events(ws, 2.0), 0.1)
        expected = [(f"O-api-{i}", x) for i in (1, 2, 3) for x in ("NEW", "TRADE") if not (i == nth and x == "TRADE")]
        assert seen == expected, (nth, seen)
        assert_in_record(s, placed[nth - 1])
        lost = admin(v, "GET")["fills_lost"]
        assert [(f["fill"], f["client_order_id"], f["seed"], f["n"]) for f in lost] == [(nth, f"O-api-{nth}", 28, 3)]
        admin(v, "DELETE")
        buy(s, "O-api-4")
        assert admin(v, "GET")["fills_lost"] == lost, "the record outlives the fault"
        assert v.counters.document()["trades"] == {"account": 4, "reports_withheld": 1, "reports_duplicated": 0}
    finally:
        v.stop()
