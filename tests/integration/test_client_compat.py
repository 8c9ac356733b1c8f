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
import json
import queue
import socket
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from opslab import spec
from opslab.datasets import store
from opslab.venue import wsapi
from opslab.venue.server import BinanceVenue

# The clients' own deprecations (python-binance on websockets' legacy client, binance-common on aiohttp's float timeout)
# are theirs, not the venue's: not errors here.
# The clients' own warnings, not the venue's: python-binance uses websockets' legacy client, binance-common
# passes aiohttp a float timeout (DeprecationWarning), and the libraries leave sockets to the garbage
# collector (ResourceWarning, reported by pytest as an unraisable exception).
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
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


def _event(msg: Any) -> Any:
    """A user-data event as the client hands it over: bare, or in the WS API's {"subscriptionId", "event"} wrapper."""
    return msg.get("event", msg) if isinstance(msg, dict) else msg


# --- python-binance (binance.client.Client, binance.AsyncClient and BinanceSocketManager) ---------------------------------------

def test_python_binance(venue: BinanceVenue) -> None:
    from binance import AsyncClient, BinanceSocketManager
    from binance.client import Client
    from binance.exceptions import BinanceAPIException

    t = Tally("python-binance")
    api = venue.url.rstrip("/") + "/api"

    def client(secret: str = SECRET) -> Client:
        c = Client(KEY, secret, ping=False)  # ping=True (the default) pings api.binance.com in the constructor
        c.API_URL = api
        return c

    c = client()
    code = lambda exc: exc.code
    t.case("ping", lambda: expect(c.ping() == {}))
    t.case("get_server_time", lambda: expect(c.get_server_time()["serverTime"] > 0))
    t.case("get_exchange_info", lambda: expect(c.get_symbol_info(SYMBOL)["symbol"] == SYMBOL))
    t.case("get_order_book", lambda: expect(c.get_order_book(symbol=SYMBOL, limit=5)["bids"]))
    t.case("get_klines", lambda: expect(len(c.get_klines(symbol=SYMBOL, interval="1m", limit=5)) == 5))
    t.case("get_ticker", lambda: expect(c.get_ticker(symbol=SYMBOL)["symbol"] == SYMBOL))
    t.case("get_recent_trades", lambda: expect(c.get_recent_trades(symbol=SYMBOL, limit=5)))
    t.case("get_account", lambda: expect(any(b["asset"] == "USDT" for b in c.get_account()["balances"])))
    order = t.case("order_limit_buy", lambda: c.order_limit_buy(symbol=SYMBOL, quantity=QTY, price=FAR_PRICE)) or {}
    t.case("get_order", lambda: expect(c.get_order(symbol=SYMBOL, orderId=order["orderId"])["status"] == "NEW"))
    t.case("get_open_orders", lambda: expect(order["orderId"] in [o["orderId"] for o in c.get_open_orders(symbol=SYMBOL)]))
    t.case("cancel_order", lambda: expect(c.cancel_order(symbol=SYMBOL, orderId=order["orderId"])["status"] == "CANCELED"))
    t.case("get_my_trades", lambda: expect(isinstance(c.get_my_trades(symbol=SYMBOL), list)))
    t.case("error -1013 BinanceAPIException", lambda: raises(lambda: c.order_limit_buy(symbol=SYMBOL, quantity="0.000010", price=FAR_PRICE),
                                                             BinanceAPIException, -1013, code))
    t.case("error -2010 BinanceAPIException", lambda: raises(lambda: c.order_limit_buy(symbol=SYMBOL, quantity="50", price="30000"),
                                                             BinanceAPIException, -2010, code))
    t.case("error -1022 BinanceAPIException", lambda: raises(client("not-the-secret").get_account, BinanceAPIException, -1022, code))
    c.close_connection()

    async def streams() -> None:
        ac = AsyncClient(KEY, SECRET)  # AsyncClient.create() would ping api.binance.com; the constructor does not
        ac.API_URL = api
        ac.ws_api._url = venue.ws_url + wsapi.PATH  # the WebSocket API (user stream), default wss://ws-api.binance.com/ws-api/v3
        bm = BinanceSocketManager(ac)
        bm.STREAM_URL = venue.ws_url + "/"  # default wss://stream.binance.com:9443/
        try:
            await t.acase("trade_socket", lambda: first(bm.trade_socket(SYMBOL), lambda m: m.get("e") == "trade"))
            await t.acase("kline_socket", lambda: first(bm.kline_socket(SYMBOL, "1m"), lambda m: m.get("e") == "kline"))
            await t.acase("user_socket (WS API userDataStream.subscribe.signature)", lambda: own_order(ac, bm))
        finally:
            await ac.close_connection()
            await ac.ws_api.__aexit__(None, None, None)

    async def first(sock: Any, want: Callable[[Any], bool]) -> None:
        async with sock as s:
            while not want(await s.recv()):
                pass

    async def own_order(ac: Any, bm: Any) -> None:
        before = user_subscriptions(venue)
        async with bm.user_socket() as us:
            await await_new_subscription(venue, before)
            placed = await ac.order_limit_buy(symbol=SYMBOL, quantity=QTY, price=FAR_PRICE)
            try:
                while not is_execution_report(_event(await us.recv()), placed["clientOrderId"]):
                    pass
            finally:
                await ac.cancel_order(symbol=SYMBOL, orderId=placed["orderId"])

    asyncio.run(streams())
    t.check()


# --- binance-connector (binance.spot.Spot, SpotWebsocketStreamClient) ----------------------------------------------------------

def test_binance_connector(venue: BinanceVenue, venue_2025: BinanceVenue) -> None:
    from binance.error import ClientError
    from binance.spot import Spot
    from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

    t = Tally("binance-connector")
    s = Spot(api_key=KEY, api_secret=SECRET, base_url=venue.url.rstrip("/"))  # default https://api.binance.com
    code = lambda exc: exc.error_code
    t.case("ping", lambda: expect(s.ping() == {}))
    t.case("time", lambda: expect(s.time()["serverTime"] > 0))
    t.case("exchange_info", lambda: expect(s.exchange_info(symbol=SYMBOL)["symbols"][0]["symbol"] == SYMBOL))
    t.case("depth", lambda: expect(s.depth(SYMBOL, limit=5)["bids"]))
    t.case("klines", lambda: expect(len(s.klines(SYMBOL, "1m", limit=5)) == 5))
    t.case("ticker_24hr", lambda: expect(s.ticker_24hr(SYMBOL)["symbol"] == SYMBOL))
    t.case("trades", lambda: expect(s.trades(SYMBOL, limit=5)))
    t.case("account", lambda: expect(any(b["asset"] == "USDT" for b in s.account()["balances"])))
    limit = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    order = t.case("new_order", lambda: s.new_order(SYMBOL, quantity=QTY, price=FAR_PRICE, **limit)) or {}
    t.case("get_order", lambda: expect(s.get_order(SYMBOL, orderId=order["orderId"])["status"] == "NEW"))
    t.case("get_open_orders", lambda: expect(order["orderId"] in [o["orderId"] for o in s.get_open_orders(SYMBOL)]))
    t.case("cancel_order", lambda: expect(s.cancel_order(SYMBOL, orderId=order["orderId"])["status"] == "CANCELED"))
    t.case("my_trades", lambda: expect(isinstance(s.my_trades(SYMBOL), list)))
    t.case("error -1013 ClientError", lambda: raises(lambda: s.new_order(SYMBOL, quantity="0.000010", price=FAR_PRICE, **limit),
                                                     ClientError, -1013, code))
    t.case("error -2010 ClientError", lambda: raises(lambda: s.new_order(SYMBOL, quantity="50", price="30000", **limit),
                                                     ClientError, -2010, code))
    wrong = Spot(api_key=KEY, api_secret="not-the-secret", base_url=venue.url.rstrip("/"))
    t.case("error -1022 ClientError", lambda: raises(wrong.account, ClientError, -1022, code))
    # Its only user stream is the listenKey one, which today's Binance retired: 410 with -1000, as the venue's 2026 profile.
    t.case("new_listen_key on 2026: ClientError 410", lambda: raises(s.new_listen_key, ClientError, 410, lambda exc: exc.status_code))

    def stream(url: str, subscribe: Callable[[Any], Any], want: Callable[[Any], bool], then: Callable[[], Any] = lambda: None) -> None:
        got: queue.Queue[Any] = queue.Queue()
        ws = SpotWebsocketStreamClient(stream_url=url, on_message=lambda _, raw: got.put(json.loads(raw)))
        try:
            subscribe(ws)
            then()
            end = time.monotonic() + TIMEOUT_S
            while not want(got.get(timeout=max(0.01, end - time.monotonic()))):
                pass
        finally:
            ws.stop()

    t.case("trade stream", lambda: stream(venue.ws_url, lambda ws: ws.trade(symbol=SYMBOL.lower()), lambda m: m.get("e") == "trade"))
    t.case("kline stream", lambda: stream(venue.ws_url, lambda ws: ws.kline(symbol=SYMBOL.lower(), interval="1m"),
                                          lambda m: m.get("e") == "kline"))

    s25 = Spot(api_key=KEY, api_secret=SECRET, base_url=venue_2025.url.rstrip("/"))
    placed: dict[str, Any] = {}

    def user_stream() -> None:
        key = s25.new_listen_key()["listenKey"]
        before = user_subscriptions(venue_2025)

        def place() -> None:
            wait_for_new_subscription(venue_2025, before)
            placed.update(s25.new_order(SYMBOL, quantity=QTY, price=FAR_PRICE, **limit))

        try:
            stream(venue_2025.ws_url, lambda ws: ws.user_data(listen_key=key),
                   lambda m: is_execution_report(m, placed.get("clientOrderId", "")), place)
        finally:
            if placed:
                s25.cancel_order(SYMBOL, orderId=placed["orderId"])

    t.case("user_data listenKey stream (profile 2025)", user_stream)
    for client in (s, wrong, s25):  # their HTTP sessions: an unclosed socket is an error under -W error
        client.session.close()
    t.check()


# --- binance-sdk-spot (Binance's generated SDK: binance_sdk_spot.spot.Spot) -----------------------------------------------------

def test_binance_sdk_spot(venue: BinanceVenue) -> None:
    from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketAPI, ConfigurationWebSocketStreams
    from binance_common.errors import BadRequestError
    from binance_sdk_spot.rest_api.models import KlinesIntervalEnum, NewOrderSideEnum, NewOrderTimeInForceEnum, NewOrderTypeEnum
    from binance_sdk_spot.spot import Spot

    t = Tally("binance-sdk-spot")
    base = venue.url.rstrip("/")

    made: list[Spot] = []

    def spot(secret: str = SECRET) -> Spot:
        made.append(Spot(config_rest_api=ConfigurationRestAPI(api_key=KEY, api_secret=secret, base_path=base),
                         config_ws_api=ConfigurationWebSocketAPI(api_key=KEY, api_secret=secret, stream_url=venue.ws_url + wsapi.PATH),
                         config_ws_streams=ConfigurationWebSocketStreams(stream_url=venue.ws_url)))
        return made[-1]

    r = spot().rest_api
    code = lambda exc: exc.status_code
    limit = {"side": NewOrderSideEnum.BUY, "type": NewOrderTypeEnum.LIMIT, "time_in_force": NewOrderTimeInForceEnum.GTC}
    t.case("ping", lambda: r.ping().data())
    t.case("time", lambda: expect(r.time().data().server_time > 0))
    t.case("exchange_info", lambda: expect(r.exchange_info(symbol=SYMBOL).data().symbols[0].symbol == SYMBOL))
    t.case("depth", lambda: expect(r.depth(SYMBOL, limit=5).data().bids))
    t.case("klines", lambda: expect(len(r.klines(SYMBOL, KlinesIntervalEnum.INTERVAL_1m, limit=5).data()) == 5))
    t.case("ticker24hr", lambda: expect(r.ticker24hr(symbol=SYMBOL).data()))
    t.case("get_trades", lambda: expect(r.get_trades(SYMBOL, limit=5).data()))
    t.case("get_account", lambda: expect(any(b.asset == "USDT" for b in r.get_account().data().balances)))
    order = t.case("new_order", lambda: r.new_order(SYMBOL, quantity=float(QTY), price=float(FAR_PRICE), **limit).data())
    oid = getattr(order, "order_id", None)
    t.case("get_order", lambda: expect(r.get_order(SYMBOL, order_id=oid).data().status == "NEW"))
    t.case("get_open_orders", lambda: expect(oid in [o.order_id for o in r.get_open_orders(symbol=SYMBOL).data()]))
    t.case("delete_order", lambda: expect(r.delete_order(SYMBOL, order_id=oid).data().status == "CANCELED"))
    t.case("my_trades", lambda: expect(isinstance(r.my_trades(SYMBOL).data(), list)))
    t.case("error -1013 BadRequestError", lambda: raises(lambda: r.new_order(SYMBOL, quantity=0.0001, price=1000.0, **limit),
                                                         BadRequestError, -1013, code))
    t.case("error -2010 BadRequestError", lambda: raises(lambda: r.new_order(SYMBOL, quantity=50.0, price=30000.0, **limit),
                                                         BadRequestError, -2010, code))
    t.case("error -1022 BadRequestError", lambda: raises(spot("not-the-secret").rest_api.get_account, BadRequestError, -1022, code))

    async def streams() -> None:
        sp = spot()
        conn = await sp.websocket_streams.create_connection()
        try:
            await t.acase("trade stream", lambda: first(conn.trade(symbol=SYMBOL.lower()), "e", "trade"))
            await t.acase("kline stream", lambda: first(conn.kline(symbol=SYMBOL.lower(), interval="1m"), "e", "kline"))
        finally:
            await conn.close_connection()
        api = await sp.websocket_api.create_connection()
        try:
            await t.acase("WS API userDataStream.subscribe.signature", lambda: own_order(api, sp))
        finally:
            await api.close_connection()

    async def first(subscribing: Awaitable[Any], field: str, value: str) -> None:
        got: asyncio.Queue[Any] = asyncio.Queue()
        handle = await subscribing
        handle.on("message", got.put_nowait)
        while True:
            msg = await got.get()
            data = msg if isinstance(msg, dict) else msg.model_dump(by_alias=True)
            if data.get(field) == value:
                return

    async def own_order(api: Any, sp: Spot) -> None:
        got: asyncio.Queue[Any] = asyncio.Queue()
        sub = await api.user_data_stream_subscribe_signature()
        sub.stream.on("message", got.put_nowait)
        placed = await asyncio.to_thread(lambda: sp.rest_api.new_order(SYMBOL, quantity=float(QTY), price=float(FAR_PRICE), **limit).data())
        try:
            while True:
                event = await got.get()
                # The SDK parses each event into a one-of model: the event type becomes the model's class (its `e` is
                # consumed as the discriminator), the fields stay Binance's one-letter names.
                inner = getattr(event, "actual_instance", event)
                if type(inner).__name__ == "ExecutionReport" and getattr(inner, "c", None) == placed.client_order_id:
                    return
        finally:
            await asyncio.to_thread(lambda: sp.rest_api.delete_order(SYMBOL, order_id=placed.order_id))

    try:
        asyncio.run(streams())
    finally:
        for made_one in made:  # their HTTP sessions: an unclosed socket is an error under -W error
            made_one.rest_api._session.close()
    t.check()


# --- the figure per client ---------------------------------------------------------------------------------------------------------

def test_summary(tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """The figure per client (passed / attempted), printed and written under the test's tmp; every attempted call passed, none left loopback."""
    rows = [(name, f"{sum(why is None for _, why in RESULTS.get(name, []))}/{len(RESULTS.get(name, []))}",
             version(name)) for name in CLIENTS]
    table = "\n".join([f"{'client':<20} {'version':<10} passed/attempted", *(f"{n:<20} {v:<10} {f}" for n, f, v in rows)])
    (tmp_path_factory.mktemp("figures") / "client_compat.txt").write_text(table + "\n")
    with capsys.disabled():
        print("\n" + table)
    assert not OUTSIDE, f"a client tried to leave loopback: {OUTSIDE}"
    for name in CLIENTS:
        results = RESULTS.get(name, [])
        assert results and all(why is None for _, why in results), f"{name}: {[r for r in results if r[1]]}"
