"""Real Binance clients against the lab's venue on 127.0.0.1, shared by the venue fault tests (test_venue_fill_lost.py,
test_venue_order_faults.py): binance-connector's REST client and listenKey stream client (profile 2025), a `websockets`
WebSocket API client (profile 2026: session.logon + userDataStream.subscribe), and the venue's loopback admin endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import time
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from websockets.sync.client import ClientConnection, connect

from opslab.venue import wsapi
from opslab.venue.server import BinanceVenue
from venue_spec import KEY, SECRET

SYMBOL, QTY = "BTCUSDT", "0.010000"
# binance-connector's own warnings, not the venue's (as in test_client_compat.py): `pytestmark = [..., *CLIENT_WARNINGS]`
CLIENT_WARNINGS = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::ResourceWarning"),
                   pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(name="spot")
def spot_fixture() -> Iterator[Any]:
    """spot(venue): a binance-connector REST client with the test credentials, closed after the test. A test module
    imports `spot_fixture` to use the fixture `spot`."""
    from binance.spot import Spot

    clients: list[Any] = []

    def make(v: BinanceVenue) -> Any:
        clients.append(Spot(api_key=KEY, api_secret=SECRET, base_url=v.url.rstrip("/")))
        return clients[-1]

    yield make
    for client in clients:
        client.session.close()


def with_price(v: BinanceVenue) -> None:
    v.exchange.start_replay()
    end = time.monotonic() + 10
    while not v.exchange.last_price and time.monotonic() < end:
        time.sleep(0.02)  # polling a readiness condition with a deadline
    assert v.exchange.last_price


def signed() -> dict[str, Any]:
    """session.logon's params signed as Binance's WS API documents (every param but signature, sorted)."""
    params: dict[str, Any] = {"apiKey": KEY, "timestamp": int(time.time() * 1000)}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()}


def ask(ws: ClientConnection, method: str, params: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps({"id": "r1", "method": method, "params": params}))
    return json.loads(ws.recv(timeout=5))


def admin(v: BinanceVenue, method: str, body: Any = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(v.url.rstrip("/") + "/admin/faults", data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def buy(s: Any, client_id: str) -> dict[str, Any]:
    return s.new_order(SYMBOL, side="BUY", type="MARKET", quantity=QTY, newClientOrderId=client_id)


def execution_reports(got: "queue.Queue[dict[str, Any]]", seconds: float) -> list[dict[str, Any]]:
    """Every executionReport that arrived within SECONDS, in order."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            event = got.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if event.get("e") == "executionReport":
            out.append(event)
    return out


def listen_key_stream(v: BinanceVenue, s: Any) -> tuple[Any, "queue.Queue[dict[str, Any]]"]:
    """binance-connector's stream client on a new listen key, once the venue subscribed it (bounded wait); its queue."""
    from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

    got: queue.Queue[dict[str, Any]] = queue.Queue()
    ws = SpotWebsocketStreamClient(stream_url=v.ws_url, on_message=lambda _, raw: got.put(json.loads(raw)))
    ws.user_data(listen_key=s.new_listen_key()["listenKey"])
    end = time.monotonic() + 5
    while not any(c.subs for c in list(v.hub.clients.values())) and time.monotonic() < end:
        time.sleep(0.02)
    return ws, got


def close_stream(ws: Any) -> None:
    ws.stop()
    ws.socket_manager.ws.shutdown()  # the client leaves its socket open after the closing handshake: the venue would wait on it


def ws_api_events(ws: ClientConnection, seconds: float) -> "queue.Queue[dict[str, Any]]":
    """The user-stream events a WebSocket API subscription received within SECONDS."""
    got: queue.Queue[dict[str, Any]] = queue.Queue()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got.put(json.loads(ws.recv(timeout=max(0.05, end - time.monotonic())))["event"])
        except TimeoutError:
            break
    return got


@contextmanager
def ws_api_user_stream(v: BinanceVenue) -> Iterator[ClientConnection]:
    """A WebSocket API connection to V, logged on (session.logon) and subscribed to the user data stream."""
    with connect(v.ws_url + wsapi.PATH) as ws:
        assert ask(ws, "session.logon", signed())["status"] == 200
        assert ask(ws, "userDataStream.subscribe", {})["result"] == {"subscriptionId": 0}
        yield ws
