"""Client compatibility (issue 25, item 5): widely used Binance client libraries against the venue on 127.0.0.1.

Each client, with its default settings except the base URLs (and the few settings docs/node.md lists),
runs public, signed, error, market-stream and user-stream calls. Every call is one counted case; each
client's test asserts every attempted case passed, and test_summary prints the figure per client
(passed / attempted) and writes it to FIGURES_FILE under the test's tmp directory.

No client may leave loopback: `offline` refuses (and records) every DNS look-up of a non-loopback
name and every connect to a non-loopback address made by this process, so a library default that
fetches from Binance's hosts fails the suite instead of reaching out.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import socket
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from opslab import spec
from opslab.datasets import store
from opslab.venue import wsapi
from opslab.venue.server import BinanceVenue

pytestmark = pytest.mark.integration
KEY, SECRET = "compat-key-0123", "compat-secret-4567"
SYMBOL = "BTCUSDT"
FAR_PRICE = "1000.00"  # a LIMIT BUY far below the replayed market: it rests
QTY = "0.010000"
TIMEOUT_S = 10.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")
SPEC_TEXT = """schema_version: 1
run_id: {run_id}
scenario: {{name: ops_smoke_demo, version: "1.0.0"}}
strategy: {{name: smoke, version: "1"}}
instrument: BTCUSDT
venue: BINANCE
dataset: {{kind: synthetic, seed: 7, start: "2024-01-01T00:00:00Z", bars: 3000}}
engine: {{kind: node, starting_balances: {{USDT: "100000.00"}}, node: {{venue_http_url: "http://127.0.0.1:18080", venue_ws_url: "ws://127.0.0.1:18081"}}}}
connectivity_readiness:
  venue: BINANCE
  placeholders:
    - {{role: api_key, env: TC_COMPAT_KEY}}
    - {{role: api_secret, env: TC_COMPAT_SECRET}}
"""
CLIENTS = ("ccxt", "python-binance", "binance-connector", "binance-sdk-spot")
RESULTS: dict[str, list[tuple[str, str | None]]] = {}  # client -> [(case, None when passed, else why)]
OUTSIDE: list[str] = []  # non-loopback look-ups and connects refused by `offline`


# --- the venue and the network guard -------------------------------------------------------------------------------------------

def _loopback(host: Any) -> bool:
    return isinstance(host, str) and (host in LOOPBACK or host.startswith("127."))


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
            OUTSIDE.append(f"getaddrinfo {host}")
            raise socket.gaierror(socket.EAI_NONAME, f"compat suite: {host} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def guard(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            OUTSIDE.append(f"connect {address}")
            raise OSError(f"compat suite: {address} is not loopback")

    def connect(sock: socket.socket, address: Any) -> None:
        guard(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        guard(sock, address)
        return real_connect_ex(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        yield


def _start(tmp: Path, run_id: str, mp: pytest.MonkeyPatch, **kwargs: Any) -> BinanceVenue:
    path = tmp / f"{run_id}.yaml"
    path.write_text(SPEC_TEXT.format(run_id=run_id))
    loaded = spec.load(path)
    store.prepare(store.DatasetParams.from_spec(loaded.data))
    v = BinanceVenue(loaded, speed=600, **kwargs).start()
    v.exchange.start_replay()
    end = time.monotonic() + TIMEOUT_S
    while not v.exchange.last_price and time.monotonic() < end:
        time.sleep(0.02)  # polling a readiness condition with a deadline, not sleeping as synchronisation
    assert v.exchange.last_price, "the replay never printed"
    return v


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("compat")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TC_ARTIFACTS_DIR", str(tmp / "artifacts"))
        mp.setenv("TC_COMPAT_KEY", KEY)
        mp.setenv("TC_COMPAT_SECRET", SECRET)
        yield tmp


@pytest.fixture(scope="module")
def venue(env: Path, offline: None) -> Iterator[BinanceVenue]:
    """Today's Binance (profile 2026, the default)."""
    with pytest.MonkeyPatch.context() as mp:
        v = _start(env, "compat", mp)
    yield v
    v.stop()


@pytest.fixture(scope="module")
def venue_2025(env: Path, offline: None) -> Iterator[BinanceVenue]:
    """Binance before the listenKey retirement (profile 2025), for binance-connector's user stream (listenKey only)."""
    with pytest.MonkeyPatch.context() as mp:
        v = _start(env, "compat2025", mp, binance_api="2025")
    yield v
    v.stop()


# --- counting ---------------------------------------------------------------------------------------------------------------------

class Tally:
    """One client's cases: each runs, passes or fails with its reason, and never stops the next one."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.results = RESULTS.setdefault(client, [])

    def case(self, name: str, call: Callable[[], Any]) -> Any:
        try:
            out = call()
        except Exception as exc:  # a failing case is counted and reported, the client's next case still runs
            self.results.append((name, f"{type(exc).__name__}: {str(exc)[:300]}"))
            return None
        self.results.append((name, None))
        return out

    async def acase(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            out = await asyncio.wait_for(call(), TIMEOUT_S)
        except Exception as exc:
            self.results.append((name, f"{type(exc).__name__}: {str(exc)[:300]}"))
            return None
        self.results.append((name, None))
        return out

    def check(self) -> None:
        failed = [f"{name}: {why}" for name, why in self.results if why]
        assert self.results and not failed, f"{self.client}: " + "; ".join(failed)


def expect(cond: bool, what: Any = "") -> None:
    if not cond:
        raise AssertionError(str(what)[:300])


def raises(call: Callable[[], Any], kind: type[BaseException], code: int, get_code: Callable[[Any], Any]) -> None:
    """CALL raises the client's exception type KIND carrying Binance's error CODE."""
    try:
        call()
    except kind as exc:
        expect(get_code(exc) == code, f"{type(exc).__name__} carries {get_code(exc)!r}, expected {code}: {exc}")
        return
    raise AssertionError(f"no {kind.__name__}")


async def araises(call: Callable[[], Awaitable[Any]], kind: type[BaseException], code: int, get_code: Callable[[Any], Any]) -> None:
    try:
        await call()
    except kind as exc:
        expect(get_code(exc) == code, f"{type(exc).__name__} carries {get_code(exc)!r}, expected {code}: {exc}")
        return
    raise AssertionError(f"no {kind.__name__}")


def ccxt_code(ex: Any) -> Callable[[Any], Any]:
    """ccxt raises its unified type (mapped from Binance's msg or code) and keeps the body as last_http_response (a default)."""
    return lambda exc: json.loads(ex.last_http_response or "{}").get("code")


def is_execution_report(event: Any, client_id: str) -> bool:
    return isinstance(event, dict) and event.get("e") == "executionReport" and event.get("c") == client_id


# --- ccxt (REST: ccxt.binance; streams: ccxt.pro.binance) -------------------------------------------------------------------------

def ccxt_config(v: BinanceVenue, secret: str = SECRET) -> dict[str, Any]:
    """Default settings but: spot markets only, no currencies nor margin pairs (SAPI wallet and margin endpoints), the venue's URLs."""
    return {"apiKey": KEY, "secret": secret, "options": {"fetchCurrencies": False, "fetchMargins": False,
                                                      "fetchMarkets": {"types": ["spot"]}}}


def ccxt_point(ex: Any, v: BinanceVenue) -> Any:
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str) and url.startswith("https://api.binance.com/"):
            ex.urls["api"][name] = v.url.rstrip("/") + url[len("https://api.binance.com"):]
    ws = ex.urls["api"].get("ws")
    if isinstance(ws, dict):
        ws["spot"] = v.ws_url + "/ws"
        ws["ws-api"]["spot"] = v.ws_url + wsapi.PATH
    return ex


def test_ccxt(venue: BinanceVenue) -> None:
    import ccxt
    import ccxt.pro

    t = Tally("ccxt")
    ex = ccxt_point(ccxt.binance(ccxt_config(venue)), venue)
    t.case("fetch_time", lambda: expect(abs(ex.fetch_time() - time.time() * 1000) < 60_000))
    t.case("load_markets", lambda: expect("BTC/USDT" in ex.load_markets()))
    t.case("fetch_order_book", lambda: expect(ex.fetch_order_book("BTC/USDT", 5)["bids"]))
    t.case("fetch_ohlcv", lambda: expect(len(ex.fetch_ohlcv("BTC/USDT", "1m", limit=5)) == 5))
    t.case("fetch_ticker", lambda: expect(ex.fetch_ticker("BTC/USDT")["last"]))
    t.case("fetch_trades", lambda: expect(ex.fetch_trades("BTC/USDT", limit=5)))
    t.case("fetch_balance", lambda: expect(ex.fetch_balance()["USDT"]["free"] > 0))
    order = t.case("create_order limit", lambda: ex.create_order("BTC/USDT", "limit", "buy", float(QTY), float(FAR_PRICE))) or {}
    t.case("fetch_order", lambda: expect(ex.fetch_order(order["id"], "BTC/USDT")["status"] == "open"))
    t.case("fetch_open_orders", lambda: expect(order["id"] in [o["id"] for o in ex.fetch_open_orders("BTC/USDT")]))
    t.case("cancel_order", lambda: expect(ex.cancel_order(order["id"], "BTC/USDT")["status"] == "canceled"))
    t.case("fetch_my_trades", lambda: expect(isinstance(ex.fetch_my_trades("BTC/USDT"), list)))
    # ccxt maps -1013 to BadRequest (InvalidOrder only for LOT_SIZE / PRICE_FILTER in the msg), -2010's msg to InsufficientFunds
    t.case("error -1013 BadRequest", lambda: raises(lambda: ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 1000.0),
                                                    ccxt.BadRequest, -1013, ccxt_code(ex)))
    t.case("error -2010 InsufficientFunds", lambda: raises(lambda: ex.create_order("BTC/USDT", "limit", "buy", 50.0, 30000.0),
                                                           ccxt.InsufficientFunds, -2010, ccxt_code(ex)))
    wrong = ccxt_point(ccxt.binance(ccxt_config(venue, secret="not-the-secret")), venue)
    wrong.markets, wrong.markets_by_id, wrong.symbols = ex.markets, ex.markets_by_id, ex.symbols
    t.case("error -1022 AuthenticationError", lambda: raises(wrong.fetch_balance, ccxt.AuthenticationError, -1022, ccxt_code(wrong)))

    async def streams() -> None:
        pro = ccxt_point(ccxt.pro.binance(ccxt_config(venue)), venue)
        try:
            await t.acase("pro load_markets", lambda: pro.load_markets())
            await t.acase("watch_trades", lambda: pro.watch_trades("BTC/USDT"))
            await t.acase("watch_ohlcv", lambda: pro.watch_ohlcv("BTC/USDT", "1m"))
            await t.acase("watch_orders (WS API userDataStream.subscribe.signature)", lambda: watch_own_order(pro))
        finally:
            await pro.close()

    async def watch_own_order(pro: Any) -> None:
        before = user_subscriptions(venue)
        watching = asyncio.ensure_future(pro.watch_orders("BTC/USDT"))
        await await_new_subscription(venue, before)
        placed = await pro.create_order("BTC/USDT", "limit", "buy", float(QTY), float(FAR_PRICE))
        try:
            while True:
                orders = await watching
                if any(o["id"] == placed["id"] and o["status"] == "open" for o in orders):
                    return
                watching = asyncio.ensure_future(pro.watch_orders("BTC/USDT"))
        finally:
            await pro.cancel_order(placed["id"], "BTC/USDT")

    asyncio.run(streams())
    t.check()


def user_subscriptions(v: BinanceVenue) -> set[tuple[int, Any]]:
    """The venue's user-data subscriptions: WebSocket API ones (session, id) and listen keys on stream connections."""
    hub = v.hub
    assert hub is not None
    from opslab.venue.streams import MARKET_STREAMS
    with hub.wsapi.lock:
        found: set[tuple[int, Any]] = {(id(s), sub) for s in hub.wsapi.sessions.values() for sub in s.subs}
    with hub.lock:
        found |= {(id(c), key) for c in hub.clients.values() if not c.gone for key in c.subs if key not in MARKET_STREAMS}
    return found


def wait_for_new_subscription(v: BinanceVenue, before: set[tuple[int, Any]]) -> None:
    """Until the venue holds a user-data subscription not in BEFORE: the client's subscribe has landed."""
    end = time.monotonic() + TIMEOUT_S
    while not user_subscriptions(v) - before:
        if time.monotonic() > end:
            raise TimeoutError("no new user-data subscription at the venue")
        time.sleep(0.01)  # polling the venue's state with a deadline


async def await_new_subscription(v: BinanceVenue, before: set[tuple[int, Any]]) -> None:
    end = time.monotonic() + TIMEOUT_S
    while not user_subscriptions(v) - before:
        if time.monotonic() > end:
            raise TimeoutError("no new user-data subscription at the venue")
        await asyncio.sleep(0.01)
