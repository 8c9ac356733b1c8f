"""The venue's order-lifecycle faults of issue 28's last drills with real clients on 127.0.0.1, on both profiles:
binance-connector places orders over REST (the path NautilusTrader's Binance clients use on both releases) and reads the
listenKey stream (profile 2025); a `websockets` client logs on to the WebSocket API and subscribes (profile 2026).
order_rate_limit: beyond N new orders per TEN_SECONDS interval an order is refused with 429 and -1015 and not placed;
every order answer carries X-MBX-ORDER-COUNT-10S and -1D. user_stream_expiry: the user data stream ends before a scheduled
event (eventStreamTerminated on the WebSocket API, listenKeyExpired on a listen key, or silently); fills go on at the venue,
unreported, until the client subscribes again. cancel_fill_race: a fill beats the scheduled cancel of a resting order, the
cancel is answered -2011 and the order ends FILLED. Switched at start and over POST /admin/faults; the seeded schedules
and what they did are recorded (GET /admin/faults, stats.json)."""

from __future__ import annotations

import json
import time

import pytest

from opslab.venue import faults
from opslab.venue.server import BinanceVenue
from venue_clients import (CLIENT_WARNINGS, SYMBOL, admin, ask, buy, close_stream, execution_reports, listen_key_stream, spot_fixture,  # noqa: F401 (the fixture spot)
                           ws_api_events, ws_api_user_stream, with_price)
from venue_spec import node_spec_fixture

pytestmark = [pytest.mark.integration, *CLIENT_WARNINGS]


node_spec = node_spec_fixture("lifecycle-faults-test")


def _interval_start(v: BinanceVenue) -> None:
    """Wait (bounded) until the venue's clock is early in a TEN_SECONDS interval, so a burst of orders stays in one."""
    end = time.monotonic() + 12
    while faults.clock_ms(v.faults) % faults.ORDER_WINDOW_MS > 3000 and time.monotonic() < end:
        time.sleep(0.05)


# --- order_rate_limit --------------------------------------------------------------------------
def test_listen_key_profile_refuses_orders_beyond_the_limit_with_1015(node_spec, spot):
    """Profile 2025, switched at runtime: two orders pass (their counts in X-MBX-ORDER-COUNT-10S), the third gets 429 -1015
    with Binance's message and is never placed nor reported; exchangeInfo says the limit; the next interval accepts again."""
    from binance.error import ClientError
    from binance.spot import Spot

    from venue_spec import KEY, SECRET

    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        headed = Spot(api_key=KEY, api_secret=SECRET, base_url=v.url.rstrip("/"), show_header=True)
        ws, got = listen_key_stream(v, s)
        try:
            assert admin(v, "POST", {"faults": ["order_rate_limit=2"]})["faults"]["order_rate_limit"]["limit"] == 2
            orders = {r["rateLimitType"]: r for r in s.exchange_info(symbol=SYMBOL)["rateLimits"]}["ORDERS"]
            assert (orders["interval"], orders["intervalNum"], orders["limit"]) == ("SECOND", 10, 2)
            _interval_start(v)
            first = headed.new_order(SYMBOL, side="BUY", type="MARKET", quantity="0.010000", newClientOrderId="O-rate-1")
            assert first["data"]["status"] == "FILLED" and first["header"]["X-MBX-ORDER-COUNT-10S"] == "1"
            assert first["header"]["X-MBX-ORDER-COUNT-1D"] == "1"
            assert buy(s, "O-rate-2")["status"] == "FILLED"
            with pytest.raises(ClientError) as err:
                buy(s, "O-rate-3")
            assert (err.value.status_code, err.value.error_code) == (429, -1015)
            assert err.value.error_message == "Too many new orders; current limit is 2 orders per TEN_SECONDS."
            assert err.value.header["X-MBX-ORDER-COUNT-10S"] == "2"
            seen = execution_reports(got, 1.0)
            time.sleep(10 - faults.clock_ms(v.faults) % faults.ORDER_WINDOW_MS / 1000 + 0.1)  # the next interval
            assert buy(s, "O-rate-4")["status"] == "FILLED"
        finally:
            close_stream(ws)
            headed.session.close()
        assert sorted({e["c"] for e in seen}) == ["O-rate-1", "O-rate-2"], "the refused order is never reported"
        assert "O-rate-3" not in {o["clientOrderId"] for o in s.get_orders(SYMBOL)}
        refused = admin(v, "GET")["orders_refused"]
        assert [(r["client_order_id"], r["count"], r["limit"], r["seed"], r["side"], r["type"]) for r in refused] == [
            ("O-rate-3", 2, 2, None, "BUY", "MARKET")]
        doc = v.counters.document()
        assert doc["orders_refused"] == refused and doc["rejects"] == {"-1015": 1} and doc["faults_active"] == ["order_rate_limit"]
    finally:
        v.stop()


def test_ws_api_profile_reports_only_the_orders_under_the_seeded_limit(node_spec, spot):
    """Profile 2026, switched at start with a seed: the limit its seed drew holds per interval; the WebSocket API
    subscription gets the accepted orders' reports only."""
    from binance.error import ClientError

    fault = faults.parse_faults(["order_rate_limit=3/28"])
    limit = fault["order_rate_limit"]["limit"]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        price = str(round(float(v.exchange.last_price) * 0.5, 2))
        with ws_api_user_stream(v) as ws:
            _interval_start(v)
            placed, refused = [], []
            for i in range(1, limit + 3):
                try:
                    s.new_order(SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010000", price=price,
                                newClientOrderId=f"O-ws-{i}")
                    placed.append(f"O-ws-{i}")
                except ClientError as err:
                    assert (err.status_code, err.error_code) == (429, -1015)
                    refused.append(f"O-ws-{i}")
            seen = execution_reports(ws_api_events(ws, 1.0), 0.1)
        assert placed == [f"O-ws-{i}" for i in range(1, limit + 1)] and len(refused) == 2
        assert sorted(e["c"] for e in seen if e["X"] == "NEW") == placed
        assert sorted(o["clientOrderId"] for o in s.get_open_orders(SYMBOL)) == placed
        records = admin(v, "GET")["orders_refused"]
        assert [(r["client_order_id"], r["seed"], r["n"], r["limit"]) for r in records] == [(c, 28, 3, limit) for c in refused]
        assert v.counters.document()["rejects"] == {"-1015": 2}
    finally:
        v.stop()


# --- user_stream_expiry ------------------------------------------------------------------------
def test_listen_key_profile_expires_the_key_before_the_scheduled_event(node_spec, spot):
    """Profile 2025, switched at runtime: before the next user event the stream gets listenKeyExpired, the key's keepalive
    answers -1125, the fills go on at the venue without a report on that key; a new key gets the next reports."""
    from binance.error import ClientError

    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            key = s.new_listen_key()["listenKey"]
            assert admin(v, "POST", {"faults": ["user_stream_expiry=1"]})["faults"]["user_stream_expiry"]["schedule"] == [1]
            assert buy(s, "O-exp-1")["status"] == "FILLED"
            events = []
            end = time.monotonic() + 2
            while time.monotonic() < end and not any(e.get("e") == "listenKeyExpired" for e in events):
                events.append(got.get(timeout=2))
            assert [e["e"] for e in events if "e" in e] == ["listenKeyExpired"] and events[-1]["listenKey"]
            assert buy(s, "O-exp-2")["status"] == "FILLED"
            assert execution_reports(got, 1.0) == [], "no report reaches the expired key"
            with pytest.raises(ClientError) as err:
                s.renew_listen_key(key)
            assert err.value.error_code == -1125
            state = admin(v, "GET")
            assert state["user_streams_active"] == 0
            assert [(r["event"], r["silent"], r["listen_keys"], r["subscriptions"]) for r in state["user_streams_ended"]] == [(1, False, 2, 0)]
        finally:
            close_stream(ws)
        ws, got = listen_key_stream(v, s)  # the client makes a new key: reports flow again
        try:
            assert buy(s, "O-exp-3")["status"] == "FILLED"
            assert {e["c"] for e in execution_reports(got, 1.0)} == {"O-exp-3"}
        finally:
            close_stream(ws)
        assert {t["orderId"] for t in s.my_trades(SYMBOL)} >= {o["orderId"] for o in s.get_orders(SYMBOL) if o["clientOrderId"] == "O-exp-2"}
        doc = v.counters.document()
        assert doc["user_streams"]["ended"] == 2 and doc["faults_active"] == ["user_stream_expiry"]
    finally:
        v.stop()


def test_ws_api_profile_terminates_the_subscription_at_the_seeded_event_and_resubscribing_works(node_spec, spot):
    """Profile 2026, switched at start with a seed: the subscription gets eventStreamTerminated right before the chosen event,
    nothing after; the session stays logged on and a new subscription gets the next reports."""
    fault = faults.parse_faults(["user_stream_expiry=3/28"])
    ordinal = fault["user_stream_expiry"]["schedule"][0]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            assert buy(s, "O-wsx-1")["status"] == "FILLED" and buy(s, "O-wsx-2")["status"] == "FILLED"
            frames = []
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                try:
                    frames.append(json.loads(ws.recv(timeout=max(0.05, end - time.monotonic()))))
                except TimeoutError:
                    break
            kinds = [f["event"]["e"] for f in frames]
            assert kinds.index("eventStreamTerminated") == ordinal - 1 and kinds[-1] == "eventStreamTerminated", kinds
            assert frames[-1]["subscriptionId"] == 0
            assert ask(ws, "session.subscriptions", {})["result"] == []
            assert ask(ws, "userDataStream.subscribe", {})["result"] == {"subscriptionId": 1}, "still logged on: it can subscribe again"
            assert buy(s, "O-wsx-3")["status"] == "FILLED"
            assert {e["c"] for e in execution_reports(ws_api_events(ws, 1.0), 0.1)} == {"O-wsx-3"}
        records = admin(v, "GET")["user_streams_ended"]
        assert [(r["event"], r["seed"], r["n"], r["subscriptions"], r["listen_keys"]) for r in records] == [(ordinal, 28, 3, 1, 0)]
    finally:
        v.stop()


def test_a_silent_expiry_ends_the_subscription_without_a_word(node_spec, spot):
    """@silent: no eventStreamTerminated; the subscription just stops receiving while the venue keeps filling."""
    v = BinanceVenue(node_spec, speed=6000, faults=faults.parse_faults(["user_stream_expiry=1@silent"])).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            assert buy(s, "O-sil-1")["status"] == "FILLED"
            assert ws_api_events(ws, 1.0).empty(), "not a frame: a silent user stream"
            assert ask(ws, "session.subscriptions", {})["result"] == []
        assert v.counters.document()["user_streams_ended"][0]["silent"] is True
    finally:
        v.stop()


# --- cancel_fill_race --------------------------------------------------------------------------
def _rest(s, v: BinanceVenue, client_id: str) -> dict:
    return s.new_order(SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010000",
                       price=str(round(float(v.exchange.last_price) * 0.5, 2)), newClientOrderId=client_id)


def test_listen_key_profile_fills_the_order_a_cancel_all_races(node_spec, spot):
    """Profile 2025, switched at runtime: DELETE /api/v3/openOrders (NautilusTrader 1.221's cancel_all) meets a fill: the resting
    order fills at its price (TRADE FILLED on the listenKey stream), the cancel gets -2011 "Unknown order sent."."""
    from binance.error import ClientError

    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            assert _rest(s, v, "O-race-1")["status"] == "NEW"
            assert admin(v, "POST", {"faults": ["cancel_fill_race=1"]})["faults"]["cancel_fill_race"]["schedule"] == [1]
            with pytest.raises(ClientError) as err:
                s.cancel_open_orders(SYMBOL)
            assert (err.value.status_code, err.value.error_code, err.value.error_message) == (400, -2011, "Unknown order sent.")
            seen = execution_reports(got, 1.0)
        finally:
            close_stream(ws)
        assert [(e["c"], e["x"], e["X"]) for e in seen] == [("O-race-1", "NEW", "NEW"), ("O-race-1", "TRADE", "FILLED")]
        order = s.get_order(SYMBOL, origClientOrderId="O-race-1")
        assert (order["status"], order["executedQty"]) == ("FILLED", "0.010000")
        raced = admin(v, "GET")["cancels_raced"]
        assert [(r["cancel"], r["request"], r["client_order_ids"], r["seed"]) for r in raced] == [
            (1, "DELETE /api/v3/openOrders", ["O-race-1"], None)]
        doc = v.counters.document()
        assert doc["cancels_raced"] == raced and doc["rejects"] == {"-2011": 1} and doc["faults_active"] == ["cancel_fill_race"]
    finally:
        v.stop()


def test_ws_api_profile_races_the_cancel_its_seed_chose(node_spec, spot):
    """Profile 2026, switched at start with a seed: single-order cancels (DELETE /api/v3/order); the chosen one loses to a fill
    (-2011, the order FILLED, its reports on the WebSocket API subscription), the others cancel."""
    from binance.error import ClientError

    fault = faults.parse_faults(["cancel_fill_race=3/28"])
    ordinal = fault["cancel_fill_race"]["schedule"][0]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as ws:
            for i in range(1, 4):
                _rest(s, v, f"O-wsr-{i}")
            for i in range(1, 4):
                if i == ordinal:
                    with pytest.raises(ClientError) as err:
                        s.cancel_order(SYMBOL, origClientOrderId=f"O-wsr-{i}")
                    assert err.value.error_code == -2011
                else:
                    assert s.cancel_order(SYMBOL, origClientOrderId=f"O-wsr-{i}")["status"] == "CANCELED"
            seen = execution_reports(ws_api_events(ws, 1.0), 0.1)
        final = {e["c"]: e["X"] for e in seen}
        assert final == {f"O-wsr-{i}": ("FILLED" if i == ordinal else "CANCELED") for i in range(1, 4)}
        raced = admin(v, "GET")["cancels_raced"]
        assert [(r["cancel"], r["request"], r["client_order_ids"], r["seed"], r["n"]) for r in raced] == [
            (ordinal, "DELETE /api/v3/order", [f"O-wsr-{ordinal}"], 28, 3)]
    finally:
        v.stop()


# --- reject_orders -----------------------------------------------------------------------------
def test_reject_orders_parses_a_seeded_rate_and_a_known_code():
    assert faults.parse_faults(["reject_orders=100"]) == {"reject_orders": {"pct": 100, "seed": 0, "code": -2010,
                                                                            "msg": faults.REJECT_REASONS[-2010]}}
    assert faults.parse_faults(["reject_orders=30/28@-1013"])["reject_orders"] == {"pct": 30, "seed": 28, "code": -1013,
                                                                                  "msg": "Filter failure: NOTIONAL"}
    for bad in ("reject_orders", "reject_orders=0", "reject_orders=101", "reject_orders=50@-1021", "reject_orders=50/x", "reject_orders=50/-1"):
        with pytest.raises(faults.InputError, match=r"reject_orders=PCT\[/SEED\]\[@CODE\] \(PCT 1-100, CODE one of -2010, -1013\)") as err:
            faults.parse_faults([bad])
        assert "\n" not in str(err.value)


def test_listen_key_profile_refuses_every_order_with_the_code_asked_and_places_none(node_spec, spot):
    """Profile 2025, switched at runtime: reject_orders=100@-2010 answers each placement 400 -2010 with Binance's message; no
    order is placed or reported; cleared, orders fill again."""
    from binance.error import ClientError

    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            admin(v, "POST", {"faults": ["reject_orders=100@-2010"]})
            for i in (1, 2):
                with pytest.raises(ClientError) as err:
                    buy(s, f"O-rej-{i}")
                assert (err.value.status_code, err.value.error_code) == (400, -2010)
                assert err.value.error_message == "Account has insufficient balance for requested action."
            admin(v, "DELETE")
            assert buy(s, "O-rej-3")["status"] == "FILLED"
            seen = execution_reports(got, 1.0)
        finally:
            close_stream(ws)
        assert sorted({e["c"] for e in seen}) == ["O-rej-3"], "a refused order is never reported"
        assert {o["clientOrderId"] for o in s.get_orders(SYMBOL)} == {"O-rej-3"}
        rejected = admin(v, "GET")["orders_rejected"]
        assert [(r["order"], r["client_order_id"], r["code"], r["pct"], r["seed"]) for r in rejected] == [
            (1, "O-rej-1", -2010, 100, 0), (2, "O-rej-2", -2010, 100, 0)]
        doc = v.counters.document()
        assert doc["orders_rejected"] == rejected and doc["rejects"] == {"-2010": 2}
    finally:
        v.stop()


def test_ws_api_profile_refuses_the_orders_its_seed_draws_the_same_every_time(node_spec, spot):
    """Profile 2026, switched at start: reject_orders=50/28@-1013 refuses the placements random.Random(28) draws under 50 %;
    the same seed gives the same schedule, and only the placed orders reach the user stream."""
    import random

    from binance.error import ClientError

    draws = random.Random(28)
    expected = [i for i in range(1, 9) if draws.random() * 100 < 50]
    assert 0 < len(expected) < 8
    v = BinanceVenue(node_spec, speed=6000, faults=faults.parse_faults(["reject_orders=50/28@-1013"])).start()
    try:
        with_price(v)
        s = spot(v)
        refused = []
        with ws_api_user_stream(v) as ws:
            for i in range(1, 9):
                try:
                    buy(s, f"O-draw-{i}")
                except ClientError as err:
                    assert (err.status_code, err.error_code, err.error_message) == (400, -1013, "Filter failure: NOTIONAL")
                    refused.append(i)
            seen = execution_reports(ws_api_events(ws, 1.5), 0.1)
        assert refused == expected
        assert sorted({e["c"] for e in seen}) == sorted(f"O-draw-{i}" for i in range(1, 9) if i not in expected)
        assert [r["order"] for r in admin(v, "GET")["orders_rejected"]] == expected
    finally:
        v.stop()
