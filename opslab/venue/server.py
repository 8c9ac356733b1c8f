"""BinanceVenue: the REST server, the WebSocket server and the exchange, started and stopped together.

Built from a RunSpec: the spec's dataset is what it replays (synthetic: prepared when missing; imported: checked intact,
its instrument and interval are the replayed symbol and bars), engine.starting_balances is
the account, the connectivity_readiness placeholders name the environment variables holding the API
key and secret it accepts (the same ones the node reads; values are never written anywhere).

Without a spec (the lab drills, `tc venue serve` alone) it serves the lab's built-in synthetic
dataset (LAB_DATASET, generated in memory) on demand (exchange.py): public endpoints only, no
credentials, nothing written under the artifacts root.

USD-M Futures is served always, beside Spot: /fapi on the same REST port (the path separates them), its streams on a
port of their own (futures_ws_url; Binance's fstream host), its account in memory (futures.py).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from opslab import contracts, fs, httpserver, market
from opslab.datasets import resolve, store
from opslab.venue import faults as fault_switch
from opslab.venue import exchange, futures, futures_contract, futures_rest, futures_streams, profiles, rest, streams
from opslab.venue.stats import VenueStats
from opslab.errors import InputError
from opslab.spec import RunSpec, credentials

ALLOWED_HOSTS = ("127.0.0.1", "::1")
LAB_DATASET = store.DatasetParams(42, "2024-01-01T00:00:00Z", 1440, "42000.00")
LAB_RUN_ID = "lab"
DEFAULT_SPEED = 60.0  # one dataset minute per wall-clock second
MAX_SPEED = 6000.0


def lab_bars() -> list[tuple[str, ...]]:
    """LAB_DATASET's bars as load_bars gives them, generated in memory."""
    return [tuple(line.decode().strip().split(",")[:6]) for line in store.generate_rows(LAB_DATASET)][1:]


class BinanceVenue:
    """The Binance-compatible venue for one spec (or the lab's built-in dataset), on loopback."""

    def __init__(self, spec: RunSpec | None = None, host: str = "127.0.0.1", port: int = 0, faults: dict[str, Any] | None = None,
                 speed: float = DEFAULT_SPEED, reset: bool = False, replay_now: bool = False, ws_port: int = 0,
                 ping_interval_s: float = streams.PING_INTERVAL_S, binance_api: str = profiles.DEFAULT, futures_ws_port: int = 0,
                 funding_every_bars: int = futures_contract.FUNDING_EVERY_BARS) -> None:
        if binance_api not in profiles.PROFILES:
            raise InputError(f"--binance-api {binance_api!r}: expected one of {', '.join(profiles.PROFILES)}")
        self.profile = profiles.get(binance_api)
        if host not in ALLOWED_HOSTS:
            raise InputError(f"--host: {host!r}: the venue binds loopback only (127.0.0.1 or ::1)")
        if not 0 < speed <= MAX_SPEED:
            raise InputError(f"--speed {speed}: expected a replay speed above 0 and at most {MAX_SPEED:g} (dataset minutes per minute)")
        if not 1 <= funding_every_bars <= futures_contract.MAX_FUNDING_EVERY_BARS:
            raise InputError(f"--funding-every-bars {funding_every_bars}: expected 1 to {futures_contract.MAX_FUNDING_EVERY_BARS:,} replayed bars")
        self.host = host
        self.api_key: str | None = None
        self.api_secret: str | None = None
        self.state_path: Path | None = None
        if spec is not None:
            self.api_key, self.api_secret = credentials(spec)
            dataset_id = resolve.dataset_id_for_spec(spec.data)
            # converges: a synthetic dataset prepared when missing, an imported one checked intact (its bars, instrument, interval)
            manifest = resolve.converge_for_spec(spec.data).data["manifest"]
            symbol, interval = manifest["instrument"], manifest.get("interval", market.INTERVAL)
            if symbol not in exchange.LISTINGS:
                raise InputError(f"dataset {dataset_id}: holds {symbol} bars; the venue lists {', '.join(exchange.LISTINGS)} only")
            bars = exchange.load_bars(store.bars_path(store.dataset_dir(dataset_id)), min(manifest["rows"], spec.data["engine"]["max_bars"]))
            run_id, balances = spec.run_id, spec.data["engine"]["starting_balances"]
            self.state_path = contracts.artifact("venue_state").at(fs.root(), run_id)
        else:
            dataset_id, bars, run_id, balances = LAB_DATASET.dataset_id, lab_bars(), LAB_RUN_ID, {}
            symbol, interval = market.SYMBOL, market.INTERVAL
        self.faults = fault_switch.VenueState()
        fault_switch.apply(self.faults, dict(faults or {}))
        self.counters = VenueStats(run_id, self.faults, persist=spec is not None)
        self.requests = 0
        self._count_lock = threading.Lock()
        self.hub: streams.Hub | None = None
        self.futures_hub: futures_streams.FuturesHub | None = None
        self.futures: futures.FuturesAccount | None = None  # set below: Spot's replay publishes before it exists
        self.exchange = exchange.Exchange(run_id, dataset_id, bars, balances, speed, self.state_path, self._publish,
                                          lambda: self.faults.faults, reset=reset, on_demand=spec is None,
                                          lose_fill=lambda fill: fault_switch.lose_fill(self.faults, fill),
                                          split_order=lambda order: fault_switch.split_order(self.faults, order),
                                          duplicate_report=lambda fill: fault_switch.duplicate_report(self.faults, fill),
                                          reorder_report=lambda order: fault_switch.reorder_report(self.faults, order),
                                          symbol=symbol, interval=interval)
        self.exchange.partial_gap_s = fault_switch.PARTIAL_GAP_MS / 1000
        self.counters.trades = lambda: int(self.exchange.state["next_trade_id"]) - 1
        self.counters.orders = self._order_counts
        self.counters.user_streams = self.user_streams_active
        # USD-M Futures beside Spot, always: its own USDT wallet (the spec's USDT balance), priced from Spot's replay
        self.futures = futures.FuturesAccount(Decimal(str(balances.get(futures_contract.QUOTE, "0"))), self._publish_futures,
                                              self.exchange.start_replay, speed, funding_every_bars)
        handler = type("Handler", (rest.Handler,), {"venue": self, "routes": {**rest.ROUTES, **futures_rest.ROUTES}})
        self.http = httpserver.bind(host, port, handler, "choose another --port, or 0 for a free one")
        self.url = httpserver.url(self.http)
        try:
            self.hub = streams.Hub(host, self.faults, self.exchange, self.counters, ws_port, ping_interval_s, self.profile,
                                   lambda: (self.api_key, self.api_secret))
        except OSError as exc:
            self.http.server_close()
            raise InputError(f"--ws-port {ws_port}: cannot listen on {host} ({exc.strerror}); choose another, or 0 for a free one") from None
        try:
            self.futures_hub = futures_streams.FuturesHub(host, self.faults, self.futures, VenueStats(run_id, self.faults, persist=False),
                                                          futures_ws_port, ping_interval_s)
        except OSError as exc:
            self.http.server_close()
            self.hub.server.socket.close()
            raise InputError(f"futures WebSocket port {futures_ws_port}: cannot listen on {host} ({exc.strerror}); "
                             "choose another, or 0 for a free one") from None
        self.futures.on_lapse = self.futures_hub.expire_listen_keys  # a lapsed listen key tells its streams (listenKeyExpired)
        self.replay_now = replay_now
        self._thread: threading.Thread | None = None

    def _order_counts(self) -> dict[str, int]:
        open_ = self.exchange.open_orders()
        return {"open": len(open_), "partially_filled": sum(o["status"] == "PARTIALLY_FILLED" for o in open_)}

    def _publish(self, stream: str, payload: dict[str, Any]) -> None:
        if self.hub is not None:
            self.hub.publish(stream, payload)
        if self.futures is not None and stream != exchange.USER_STREAM:
            self.futures.on_spot(stream, payload)

    def _publish_futures(self, stream: str, payload: dict[str, Any]) -> None:
        if self.futures_hub is not None:
            self.futures_hub.publish(stream, payload)

    def user_streams_active(self) -> int:
        """User data streams the venue delivers now (listen keys on a stream, WebSocket API subscriptions)."""
        return self.hub.user_streams_active() if self.hub is not None else 0

    def server_time_ms(self) -> int:
        """The venue's clock (wall-clock milliseconds plus clock_skew's offset), or the instant the frozen_time fault froze it."""
        return fault_switch.server_time_ms(self.faults)

    def count_request(self) -> None:
        with self._count_lock:
            self.requests += 1

    def set_faults(self, faults: dict[str, Any]) -> None:
        with self.faults.lock:
            fault_switch.apply(self.faults, faults)
        if faults.get("drop") or faults.get("error_5xx"):
            assert self.hub is not None and self.futures_hub is not None
            self.hub.close_all()
            self.futures_hub.close_all()
        if faults.get("half_open"):
            for hub in (self.hub, self.futures_hub):
                if hub is not None:
                    hub.freeze_all()

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    @property
    def ws_url(self) -> str:
        assert self.hub is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.hub.port}"

    @property
    def futures_ws_url(self) -> str:
        """The USD-M Futures streams' base URL (Binance's fstream host): market streams and listen-key user streams."""
        assert self.futures_hub is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.futures_hub.port}"

    def fill_open_orders(self) -> list[int]:
        """Fill every open order at its limit price as if the market traded through it (the admin fill)."""
        return self.exchange.fill_open()

    def _start_behind(self) -> None:
        """Everything but the REST loop: statistics, WebSocket hub, the replay when asked at once."""
        assert self.hub is not None and self.futures_hub is not None
        self.counters.start()
        self.hub.start()
        self.futures_hub.start()
        if self.replay_now:
            self.exchange.start_replay()

    def _stop_behind(self) -> None:
        assert self.hub is not None and self.futures_hub is not None
        self.hub.stop()
        self.futures_hub.stop()
        self.exchange.stop()
        self.counters.stop()

    def start(self) -> "BinanceVenue":
        """Serve in background threads (tests, the lab drills); stop() ends it."""
        self._start_behind()
        self._thread = threading.Thread(target=self.http.serve_forever, name="venue-rest", daemon=True)
        self._thread.start()
        return self

    def serve(self, on_ready: Callable[["BinanceVenue"], None] | None = None) -> None:
        """Serve REST in this thread until SIGINT or SIGTERM (the CLI), ON_READY once listening, then stop everything."""
        self._start_behind()
        try:
            httpserver.serve_until_signal(self.http, lambda url: on_ready(self) if on_ready else None)
        finally:
            self._stop_behind()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._stop_behind()

    def stats(self) -> dict[str, Any]:
        """The request counts (flat), the stats.json document and the replay's progress."""
        with self.faults.lock:
            counted = dict(self.faults.stats)
        assert self.hub is not None
        return {**counted, "venue_stats": self.counters.document(), "ws_messages_sent": self.hub.sent,
                "ws_slow_disconnected": self.hub.slow_disconnected,
                "market_events": self.exchange.messages, "replay_cursor": self.exchange.state["replay"]["cursor"],
                "bars_total": len(self.exchange.bars), "replay_error": self.exchange.replay_error}

    def __enter__(self) -> "BinanceVenue":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
