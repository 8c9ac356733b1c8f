"""The venue's ack_lost and clock_skew faults (issue 28) with real clients on 127.0.0.1, on both profiles: binance-connector
places orders over REST (the path NautilusTrader's Binance clients use on both releases) and reads the listenKey stream
(profile 2025); a `websockets` client logs on to the WebSocket API and subscribes (profile 2026).
ack_lost: the order is placed and reported on the user data stream, its HTTP answer is lost (status unknown 503 -1007, a
closed connection, or an answer later than the client waits). clock_skew: the venue's serverTime runs ahead and signed
requests timed by the host clock are refused with -1021, on REST and on the WebSocket API. Switched at start and over
POST /admin/faults; the seeded schedules and what they did are recorded (GET /admin/faults, stats.json)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from opslab.venue import faults
from opslab.venue.server import BinanceVenue
from venue_clients import (CLIENT_WARNINGS, QTY, SYMBOL, admin, ask, buy, close_stream, execution_reports, listen_key_stream, signed, spot_fixture,  # noqa: F401 (the fixture spot)
                           ws_api_events, ws_api_user_stream, with_price)
from venue_spec import node_spec_fixture

pytestmark = [pytest.mark.integration, *CLIENT_WARNINGS]


node_spec = node_spec_fixture("ack-clock-faults-test")


# --- parsing -----------------------------------------------------------------------------------
def test_ack_lost_and_clock_skew_parse_their_seeded_schedules():
    assert faults.parse_faults(["ack_lost=2"]) == {"ack_lost": {"n": 2, "seed": None, "schedule": [2], "mode": "drop", "delay_ms": None,
                                                                "order_type": None}}
    assert faults.parse_faults(["ack_lost=1@unknown:LIMIT"])["ack_lost"] == {"n": 1, "seed": None, "schedule": [1], "mode": "unknown",
                                                                             "delay_ms": None, "order_type": "LIMIT"}
    assert faults.parse_faults(["ack_lost=3@unknown"])["ack_lost"]["mode"] == "unknown"
    assert faults.parse_faults(["ack_lost=1@1500"])["ack_lost"] == {"n": 1, "seed": None, "schedule": [1], "mode": "delay", "delay_ms": 1500,
                                                                    "order_type": None}
    seeded = faults.parse_faults(["ack_lost=5/28@unknown"])["ack_lost"]
    assert seeded == faults.parse_faults(["ack_lost=5/28@unknown"])["ack_lost"] and seeded["seed"] == 28 and 1 <= seeded["schedule"][0] <= 5
    assert faults.parse_faults(["clock_skew=10000"]) == {"clock_skew": {"ms": 10000, "seed": None, "offset_ms": 10000}}
    assert faults.parse_faults(["clock_skew=-3000"])["clock_skew"]["offset_ms"] == -3000
    skew = faults.parse_faults(["clock_skew=20000/28"])["clock_skew"]
    assert skew == faults.parse_faults(["clock_skew=20000/28"])["clock_skew"] and 10000 <= skew["offset_ms"] <= 20000
    for bad in ("ack_lost", "ack_lost=0", "ack_lost=2@later", "ack_lost=2@0", "ack_lost=2/", "ack_lost=1@9999999", "ack_lost=1:limit",
                "ack_lost=1@drop:"):
        with pytest.raises(faults.InputError, match=r"ack_lost=N\[/SEED\]\[@drop\|@unknown\|@MS\]") as err:
            faults.parse_faults([bad])
        assert "\n" not in str(err.value)
    for bad in ("clock_skew", "clock_skew=0", "clock_skew=x", "clock_skew=99999999", "clock_skew=1000/-1"):
        with pytest.raises(faults.InputError, match=r"clock_skew=MS\[/SEED\]"):
            faults.parse_faults([bad])
    assert {"ack_lost", "clock_skew"} <= set(faults.FAULT_NAMES)


# --- ack_lost ----------------------------------------------------------------------------------
def test_listen_key_profile_places_the_order_whose_answer_is_lost_in_each_mode(node_spec, spot):
    """Profile 2025, switched at runtime: the order is placed and reported on the listenKey stream; the REST client gets
    Binance's status unknown (503 -1007), a closed connection, or nothing within its timeout."""
    import requests
    from binance.error import ServerError
    from binance.spot import Spot

    from venue_spec import KEY, SECRET

    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()
    try:
        with_price(v)
        s = spot(v)
        ws, got = listen_key_stream(v, s)
        try:
            assert admin(v, "POST", {"faults": ["ack_lost=2@unknown"]})["faults"]["ack_lost"]["schedule"] == [2]
            assert buy(s, "O-ack-1")["status"] == "FILLED"
            with pytest.raises(ServerError) as err:
                buy(s, "O-ack-2")
            body = json.loads(err.value.message)  # binance-connector keeps a 5xx answer as its raw text
            assert (err.value.status_code, body["code"]) == (503, -1007) and "status unknown" in body["msg"]
            # Binance's clientOrderId is unique among OPEN orders: a retry of the filled market order is a second order
            assert buy(s, "O-ack-2")["status"] == "FILLED"
            admin(v, "POST", {"faults": ["ack_lost=1@drop"]})
            with pytest.raises(requests.exceptions.ConnectionError):
                buy(s, "O-ack-3")
            admin(v, "POST", {"faults": ["ack_lost=1@1500"]})
            impatient = Spot(api_key=KEY, api_secret=SECRET, base_url=v.url.rstrip("/"), timeout=0.5)
            started = time.monotonic()
            with pytest.raises(requests.exceptions.ReadTimeout):
                buy(impatient, "O-ack-4")
            assert time.monotonic() - started < 1.4
            impatient.session.close()
            admin(v, "POST", {"faults": ["ack_lost=1@unknown:LIMIT"]})  # only LIMIT orders are counted
            assert buy(s, "O-ack-5")["status"] == "FILLED"
            with pytest.raises(ServerError):
                s.new_order(SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity=QTY,
                            price=str(round(float(v.exchange.last_price) * 0.5, 2)), newClientOrderId="O-ack-6")
            seen = execution_reports(got, 2.0)
        finally:
            close_stream(ws)
        assert [(e["c"], e["X"]) for e in seen if e["c"] != "O-ack-1"] == [
            ("O-ack-2", "NEW"), ("O-ack-2", "FILLED"), ("O-ack-2", "NEW"), ("O-ack-2", "FILLED"),
            ("O-ack-3", "NEW"), ("O-ack-3", "FILLED"), ("O-ack-4", "NEW"), ("O-ack-4", "FILLED"), ("O-ack-5", "NEW"), ("O-ack-5", "FILLED"),
            ("O-ack-6", "NEW")], seen
        orders = [o for o in s.get_orders(SYMBOL) if o["clientOrderId"] in ("O-ack-2", "O-ack-3", "O-ack-4")]
        assert [(o["clientOrderId"], o["status"], o["executedQty"]) for o in orders] == [
            ("O-ack-2", "FILLED", QTY), ("O-ack-2", "FILLED", QTY), ("O-ack-3", "FILLED", QTY), ("O-ack-4", "FILLED", QTY)]
        lost = admin(v, "GET")["acks_lost"]
        assert [(r["order"], r["client_order_id"], r["mode"], r["delay_ms"], r["type"], r["status"], r["seed"]) for r in lost] == [
            (2, "O-ack-2", "unknown", None, "MARKET", "FILLED", None), (1, "O-ack-3", "drop", None, "MARKET", "FILLED", None),
            (1, "O-ack-4", "delay", 1500, "MARKET", "FILLED", None), (1, "O-ack-6", "unknown", None, "LIMIT", "NEW", None)]
        assert [o["clientOrderId"] for o in s.get_open_orders(SYMBOL)] == ["O-ack-6"], "the limit order rests at the venue"
        doc = v.counters.document()
        assert doc["acks_lost"] == lost and doc["rejects"] == {"-1007": 2} and doc["faults_active"] == ["ack_lost"]
    finally:
        v.stop()


def test_ws_api_profile_reports_the_resting_order_whose_answer_the_seed_chose(node_spec, spot):
    """Profile 2026, switched at start with a seed: the chosen limit order rests at the venue and its NEW report reaches the
    WebSocket API subscription; resending it is a duplicate while it rests (-2010), as NautilusTrader's retry finds."""
    from binance.error import ClientError, ServerError

    fault = faults.parse_faults(["ack_lost=3/7@unknown"])
    ordinal = fault["ack_lost"]["schedule"][0]
    v = BinanceVenue(node_spec, speed=6000, faults=fault).start()
    try:
        with_price(v)
        s = spot(v)
        price = str(round(float(v.exchange.last_price) * 0.5, 2))
        with ws_api_user_stream(v) as ws:
            def place(i: int) -> dict[str, Any]:
                return s.new_order(SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity=QTY, price=price, newClientOrderId=f"O-rest-{i}")

            for i in range(1, 4):
                if i == ordinal:
                    with pytest.raises(ServerError):
                        place(i)
                    with pytest.raises(ClientError) as dup:
                        place(i)
                    assert dup.value.error_code == -2010 and dup.value.error_message == "Duplicate order sent."
                else:
                    assert place(i)["status"] == "NEW"
            seen = execution_reports(ws_api_events(ws, 1.0), 0.1)
        assert sorted(e["c"] for e in seen if e["X"] == "NEW") == ["O-rest-1", "O-rest-2", "O-rest-3"]
        assert sorted(o["clientOrderId"] for o in s.get_open_orders(SYMBOL)) == ["O-rest-1", "O-rest-2", "O-rest-3"]
        lost = admin(v, "GET")["acks_lost"]
        assert [(r["order"], r["client_order_id"], r["seed"], r["n"], r["status"], r["type"]) for r in lost] == \
            [(ordinal, f"O-rest-{ordinal}", 7, 3, "NEW", "LIMIT")]
        assert v.counters.document()["rejects"] == {"-2010": 1, "-1007": 1}
    finally:
        v.stop()


# --- clock_skew --------------------------------------------------------------------------------
def test_ws_api_profile_refuses_host_timestamps_outside_recv_window_of_the_skewed_clock(node_spec, spot):
    """Profile 2026, switched at runtime: serverTime runs 10 s ahead; REST and WebSocket API requests signed with the host
    clock get -1021; one signed with the venue's serverTime passes (a client that adjusts); the host clock is untouched."""
    from binance.error import ClientError

    v = BinanceVenue(node_spec, speed=6000).start()
    try:
        s = spot(v)
        assert s.account()["accountType"] == "SPOT"
        assert admin(v, "POST", {"faults": ["clock_skew=10000"]})["faults"]["clock_skew"]["offset_ms"] == 10000
        host = int(time.time() * 1000)
        server = s.time()["serverTime"]
        assert 9_500 <= server - host <= 11_000 and abs(time.time() * 1000 - host) < 1_000
        with pytest.raises(ClientError) as err:
            s.account()
        assert (err.value.status_code, err.value.error_code) == (400, -1021)
        assert err.value.error_message == "Timestamp for this request is outside of the recvWindow."
        assert s.account(recvWindow=60000)["accountType"] == "SPOT"  # a window wide enough: 10 s behind is inside 60 s
        with ws_api_user_stream_refused(v) as answers:
            assert answers["host"]["error"]["code"] == -1021
            assert answers["server"]["status"] == 200 and answers["time"] - host >= 9_500
        state = admin(v, "GET")
        assert state["clock_offset_ms"] == 10000 and state["rejects"] == {"-1021": 2}
        refused = state["timestamps_rejected"]
        assert [(r["surface"], r["request"], r["offset_ms"]) for r in refused] == [("rest", "GET /api/v3/account", 10000),
                                                                                   ("ws-api", "session.logon", 10000)]
        assert all(-11_000 <= r["client_lead_ms"] <= -9_000 and r["recv_window_ms"] in (None, "5000") for r in refused)
        doc = v.counters.document()
        assert doc["rejects"] == {"-1021": 2} and doc["clock_offset_ms"] == 10000 and doc["faults_active"] == ["clock_skew"]
        admin(v, "DELETE")
        assert s.account()["accountType"] == "SPOT" and v.counters.document()["clock_offset_ms"] == 0
    finally:
        v.stop()


def test_listen_key_profile_refuses_a_clock_behind_with_the_ahead_message(node_spec, spot):
    """Profile 2025, switched at start: the venue's clock 3 s behind the host's makes host timestamps more than 1 s ahead
    of the server's time (-1021 with Binance's other message); the listen key (API key only) still works."""
    from binance.error import ClientError

    v = BinanceVenue(node_spec, speed=6000, binance_api="2025", faults=faults.parse_faults(["clock_skew=-3000"])).start()
    try:
        s = spot(v)
        assert s.new_listen_key()["listenKey"]
        with pytest.raises(ClientError) as err:
            buy(s, "O-skew-1")
        assert err.value.error_code == -1021 and "ahead of the server's time" in err.value.error_message
        refused = admin(v, "GET")["timestamps_rejected"]
        assert [(r["request"], r["offset_ms"]) for r in refused] == [("POST /api/v3/order", -3000)] and refused[0]["client_lead_ms"] > 2000
    finally:
        v.stop()


@contextmanager
def ws_api_user_stream_refused(v: BinanceVenue) -> Iterator[dict[str, Any]]:
    """session.logon signed with the host clock (refused), then with the venue's serverTime from its `time` method."""
    import hashlib
    import hmac

    from websockets.sync.client import connect

    from opslab.venue import wsapi
    from venue_spec import KEY, SECRET

    with connect(v.ws_url + wsapi.PATH) as ws:
        host = ask(ws, "session.logon", signed())
        now = ask(ws, "time", {})["result"]["serverTime"]
        params = {"apiKey": KEY, "timestamp": now}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        server = ask(ws, "session.logon", {**params, "signature": hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()})
        yield {"host": host, "server": server, "time": now}
