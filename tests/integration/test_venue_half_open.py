"""The venue's half_open fault (issue 28) with real clients on 127.0.0.1: every WebSocket connection open when it is switched
on stays open but goes silent both ways (no market or user data, no answers, the venue's pings stop and the client's get no
pong, never a close), as when the peer vanished without a FIN; a new connection is served as ever. Market streams
(`websockets` and binance-connector's stream client) and a WebSocket API session (session.logon, userDataStream.subscribe)."""

from __future__ import annotations

import json
import queue
import time

import pytest
from websockets.sync.client import connect

from opslab.venue import faults, wsapi
from opslab.venue.server import BinanceVenue
from venue_clients import (CLIENT_WARNINGS, admin, ask, buy, execution_reports, signed, spot_fixture, with_price,  # noqa: F401 (the fixture spot)
                           ws_api_events, ws_api_user_stream)
from venue_spec import node_spec_fixture

pytestmark = [pytest.mark.integration, *CLIENT_WARNINGS]
TRADES = "/ws/btcusdt@trade"
QUIET_S = 1.5  # how long a half-open connection is watched for anything at all (the replay prints trades many times a second)

node_spec = node_spec_fixture("half-open-test")


def _silent(ws, seconds: float) -> bool:
    """True when nothing arrives on WS for SECONDS and it is still open (a close would raise ConnectionClosed)."""
    try:
        ws.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def _trades(ws, n: int) -> list[dict]:
    return [json.loads(ws.recv(timeout=5)) for _ in range(n)]


def test_half_open_parses_and_takes_no_value():
    assert faults.parse_faults(["half_open"]) == {"half_open": True}
    with pytest.raises(faults.InputError, match="others take no value"):
        faults.parse_faults(["half_open=3"])
    assert "half_open" in faults.usage()


def test_a_market_stream_goes_half_open_while_a_new_one_is_served(node_spec):
    v = BinanceVenue(node_spec, speed=6000, ping_interval_s=0.3).start()
    try:
        with_price(v)
        with connect(v.ws_url + TRADES) as old:
            assert [t["e"] for t in _trades(old, 3)] == ["trade"] * 3
            assert old.ping().wait(2), "answered before the fault"
            assert admin(v, "POST", {"faults": ["half_open"]})["faults"] == {"half_open": True}
            while True:  # what was already on the wire before the switch may still arrive; then nothing does
                if _silent(old, 0.3):
                    break
            assert _silent(old, QUIET_S), "a half-open connection delivers nothing"
            assert not old.ping().wait(1.0), "its pings get no pong"
            old.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
            assert _silent(old, 0.5), "its commands get no answer"
            with connect(v.ws_url + TRADES) as new:  # the fault is still on: a new connection is served as ever
                assert [t["e"] for t in _trades(new, 3)] == ["trade"] * 3
                assert new.ping().wait(2)
                new.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
                while (answer := json.loads(new.recv(timeout=5))).get("id") != 8:
                    pass
                assert answer == {"result": ["btcusdt@trade"], "id": 8}
            admin(v, "DELETE")
            assert _silent(old, 0.5), "clearing the fault does not bring a half-open connection back"
            v.counters.write()
            doc = v.counters.document()
            assert doc["ws"]["half_open"] == 1 and "half_open" not in doc["faults_active"]
        # the client gave up on it (its close): the venue forgets the connection without ever having sent on it again
        end = time.monotonic() + 5
        while len(v.hub.clients) and time.monotonic() < end:
            time.sleep(0.02)
        assert len(v.hub.clients) == 0
    finally:
        v.stop()


def test_binance_connectors_stream_client_hears_nothing_after_half_open(node_spec):
    from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

    v = BinanceVenue(node_spec, speed=6000).start()
    got: queue.Queue[dict] = queue.Queue()
    ws = SpotWebsocketStreamClient(stream_url=v.ws_url, on_message=lambda _, raw: got.put(json.loads(raw)))
    try:
        with_price(v)
        ws.trade(symbol="btcusdt")
        assert got.get(timeout=5)  # the subscription's answer, then trades
        assert any(got.get(timeout=5).get("e") == "trade" for _ in range(3))
        admin(v, "POST", {"faults": ["half_open"]})
        time.sleep(0.3)  # what was on the wire already
        while not got.empty():
            got.get_nowait()
        with pytest.raises(queue.Empty):
            got.get(timeout=QUIET_S)
        assert v.counters.document()["ws"]["half_open"] == 1
    finally:
        ws.stop()
        ws.socket_manager.ws.shutdown()
        v.stop()


def test_a_websocket_api_session_goes_half_open_and_misses_its_fills(node_spec, spot):
    v = BinanceVenue(node_spec, speed=6000).start()
    try:
        with_price(v)
        s = spot(v)
        with ws_api_user_stream(v) as old:
            buy(s, "O-before")
            assert [e["x"] for e in execution_reports(ws_api_events(old, 1.0), 0.1)] == ["NEW", "TRADE"]
            admin(v, "POST", {"faults": ["half_open"]})
            buy(s, "O-during")  # REST is served; the fill's reports reach no half-open session
            assert _silent(old, QUIET_S), "no event, no answer"
            old.send(json.dumps({"id": "p1", "method": "ping", "params": {}}))
            assert _silent(old, 0.5), "its requests get no answer"
            assert not old.ping().wait(1.0)
            with connect(v.ws_url + wsapi.PATH) as new:  # a new session logs on and hears the next fill
                assert ask(new, "session.logon", signed())["status"] == 200
                assert ask(new, "userDataStream.subscribe", {})["status"] == 200
                buy(s, "O-after")
                assert [(e["c"], e["x"]) for e in execution_reports(ws_api_events(new, 1.0), 0.1)] == [("O-after", "NEW"), ("O-after", "TRADE")]
        assert s.get_order("BTCUSDT", origClientOrderId="O-during")["status"] == "FILLED", "the venue filled it all the same"
    finally:
        v.stop()


def test_half_open_at_start_leaves_nothing_and_new_connections_work(node_spec):
    """Switched on at start there is no connection to leave half-open: every connection is served."""
    v = BinanceVenue(node_spec, speed=6000, faults=faults.parse_faults(["half_open"])).start()
    try:
        with_price(v)
        with connect(v.ws_url + TRADES) as ws:
            assert [t["e"] for t in _trades(ws, 2)] == ["trade"] * 2
        assert v.counters.document()["ws"]["half_open"] == 0
    finally:
        v.stop()
