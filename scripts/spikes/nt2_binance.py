"""SPIKE (issue 26, item 6) -- NOT part of the lab: no test, no CLI command, no CI job runs it.

NautilusTrader 2.0 (release candidate) against the lab's Binance-compatible venue on 127.0.0.1.
What it measured and what was decided: docs/adr/0002-nautilustrader-2.md.

One file, three roles, two interpreters (2.0 needs Python >= 3.13, the lab's default venv is 3.11):

  run    (any Python)       starts `venue` with LAB_PYTHON, then `node` with NT2_PYTHON, waits, prints both logs
  venue  (the lab's Python) the lab's venue (node-demo spec, --binance-api 2026 by default), every request logged
  node   (NautilusTrader 2) a LiveNode with the Binance Spot data and execution clients pointed at the venue

Reproduce (about 40 s on the 2-core lab machine):

  $(pyenv prefix 3.13.0)/bin/python -m venv /tmp/nt2-venv
  /tmp/nt2-venv/bin/pip install nautilus_trader==2.0.0rc7
  python3 scripts/spikes/nt2_binance.py run --nt2-python /tmp/nt2-venv/bin/python \
      --lab-python /work/main/.venv/bin/python [--market-data json|sbe] [--seconds 20] ...

The runs in ADR 0002 (add --nt2-python/--lab-python as above):

  run                                          Spot, JSON market data, HMAC: stops at REST exchangeInfo (SBE asked)
  run --market-data sbe [--ed25519]            HMAC refused at build; with Ed25519 the same REST stop
  run --us --no-exec                           Binance.US mode, data only: runs
  run --us --binance-api 2025 --ws-exec '{ws}' --reconciliation --order    data + REST orders + listenKey: runs
  run --product usd_m                          /fapi/v1/* (the venue serves Spot only)

Everything it writes goes under --out (default /tmp/nt2-spike): venue.log, node.log, the venue's artifacts.
The API key and secret are throwaway lab values (the venue accepts whatever the environment gives it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "spike-key-0001", "spike-secret-0001"  # HMAC: any string; the adapter calls a non-PEM secret HMAC
REDACT = re.compile(r"(signature|apiKey|X-MBX-APIKEY)([=\":\s]+)[^&\"\s,}]+", re.I)


def _log(*parts: object) -> None:
    print(f"{time.strftime('%H:%M:%S')} {' '.join(str(p) for p in parts)}", file=sys.stderr, flush=True)


def _redact(text: str) -> str:
    return REDACT.sub(r"\1\2<redacted>", text)


# --------------------------------------------------------------------------------------------- venue (lab Python)
def venue(args: argparse.Namespace) -> int:
    """The lab's venue for fixtures/specs/node-demo.yaml, profile 2026, every request logged to stderr."""
    os.environ.setdefault("TC_ARTIFACTS_DIR", str(Path(args.out) / "artifacts"))
    os.environ["TC_BINANCE_API_KEY"], os.environ["TC_BINANCE_API_SECRET"] = KEY, SECRET
    sys.path.insert(0, str(REPO))
    from opslab import spec
    from opslab.venue import rest, streams, wsapi
    from opslab.venue.server import BinanceVenue

    def log_message(self, fmt: str, *a: object) -> None:  # BaseHTTPRequestHandler.log_request -> here, once per answer
        extra = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "x-mbx-sbe", "content-type")}
        _log("REST", _redact(self.requestline), "->", a[1] if len(a) > 1 else "", json.dumps(extra) if extra else "")
    rest.Handler.log_message = log_message

    refusal, handle, command = streams.Hub._refusal, streams.Hub._handle, streams.Hub._command

    def _refusal(self, request):  # type: ignore[no-untyped-def]
        answer = refusal(self, request)
        _log("WS handshake", request.path, "->", answer.status_code if answer is not None else 101)
        return answer

    def _handle(self, conn):  # type: ignore[no-untyped-def]
        _log("WS open", conn.request.path)
        try:
            return handle(self, conn)
        finally:
            _log("WS closed", conn.request.path, conn.close_code, conn.close_reason)

    def _command(self, client, raw):  # type: ignore[no-untyped-def]
        _log("WS command", _redact(raw if isinstance(raw, str) else f"<binary {len(raw)} bytes> {raw[:40]!r}"))
        return command(self, client, raw)

    answer = wsapi.WsApi._answer

    def _answer(self, session, raw):  # type: ignore[no-untyped-def]
        reply = answer(self, session, raw)
        text = raw if isinstance(raw, str) else f"<binary {len(raw)} bytes> {raw[:40]!r}"
        _log("WS-API request", _redact(text)[:400], "-> status", reply.get("status"), json.dumps(reply.get("error") or "")[:200])
        return reply

    streams.Hub._refusal, streams.Hub._handle, streams.Hub._command, wsapi.WsApi._answer = _refusal, _handle, _command, _answer
    loaded = spec.load(REPO / "fixtures/specs/node-demo.yaml")
    v = BinanceVenue(loaded, speed=600, reset=True, replay_now=True, binance_api=args.binance_api)
    v.serve(lambda ready: print(json.dumps({"http": ready.url, "ws": ready.ws_url}), flush=True))
    return 0


# --------------------------------------------------------------------------------------------- node (NautilusTrader 2)
def node(args: argparse.Namespace) -> int:
    import nautilus_trader
    from nautilus_trader.adapters.binance import (BinanceDataClientConfig, BinanceDataClientFactory, BinanceEnvironment,
                                                  BinanceExecutionClientConfig, BinanceExecutionClientFactory,
                                                  BinanceInstrumentProviderConfig, BinanceProductType,
                                                  BinanceSpotMarketDataMode)
    from nautilus_trader.common import DataActor, Environment, LoggerConfig, LogLevel
    from nautilus_trader.live import LiveNode
    from nautilus_trader.model import AccountId, BarType, InstrumentId, OrderSide, TraderId
    from nautilus_trader.trading import Strategy

    _log("nautilus_trader", nautilus_trader.__version__, "python", sys.version.split()[0])
    secret = SECRET
    if args.ed25519:  # a throwaway Ed25519 private key, PKCS#8 DER in base64 (the venue cannot verify it: it knows HMAC only)
        pem = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, text=True, check=True).stdout
        secret = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    product = {"spot": BinanceProductType.SPOT, "usd_m": BinanceProductType.USD_M}[args.product]
    instrument = InstrumentId.from_str("BTCUSDT.BINANCE" if args.product == "spot" else "BTCUSDT-PERP.BINANCE")
    mode = BinanceSpotMarketDataMode.Json if args.market_data == "json" else BinanceSpotMarketDataMode.Sbe
    provider = BinanceInstrumentProviderConfig(load_all=False, load_ids=[str(instrument)])
    ws = args.ws.rstrip("/")
    data = BinanceDataClientConfig(product_type=product, environment=BinanceEnvironment.LIVE, base_url_http=args.http,
                                   base_url_ws=(args.ws_data or "{ws}").format(ws=ws), api_key=KEY, api_secret=secret,
                                   spot_market_data_mode=mode, instrument_provider=provider, max_retries=1, us=args.us)
    exec_ = BinanceExecutionClientConfig(account_id=AccountId("BINANCE-001"), product_type=product,
                                         environment=BinanceEnvironment.LIVE, base_url_http=args.http,
                                         base_url_ws=(args.ws_exec or "{ws}/ws-api/v3").format(ws=ws),
                                         base_url_ws_trading=args.ws_trading_url.format(ws=ws) if args.ws_trading_url else None,
                                         use_ws_trading=not args.no_ws_trading, instrument_provider=provider, api_key=KEY,
                                         api_secret=secret, max_retries=1, us=args.us)

    class Probe(DataActor):
        counts = {"instrument": 0, "trade": 0, "quote": 0, "bar": 0}

        def on_start(self) -> None:
            self.log.info(f"probe: instruments in cache: {[str(i.id) for i in self.cache.instruments()]}")
            self.subscribe_trades(instrument)
            self.subscribe_quotes(instrument)
            self.subscribe_bars(BarType.from_str(f"{instrument}-1-MINUTE-LAST-EXTERNAL"))

        def on_trade(self, trade) -> None:  # type: ignore[no-untyped-def]
            self.counts["trade"] += 1

        def on_quote(self, quote) -> None:  # type: ignore[no-untyped-def]
            self.counts["quote"] += 1

        def on_bar(self, bar) -> None:  # type: ignore[no-untyped-def]
            self.counts["bar"] += 1

        def on_stop(self) -> None:
            self.log.info(f"probe: counts {self.counts}")

    class OneOrder(Strategy):
        """One LIMIT BUY 10 % under the first bar's close, cancelled once accepted: REST order + user stream round trip."""
        events: list[str] = []
        sent = False

        def on_start(self) -> None:
            self.subscribe_bars(BarType.from_str(f"{instrument}-1-MINUTE-LAST-EXTERNAL"))

        def on_bar(self, bar) -> None:  # type: ignore[no-untyped-def]
            if self.sent:
                return
            inst = self.cache.instrument(instrument)
            order = self.order_factory.limit(instrument, OrderSide.BUY, inst.make_qty(0.001),
                                             inst.make_price(float(str(bar.close)) * 0.9))
            self.sent = True
            self.submit_order(order)

        def on_order_event(self, event) -> None:  # type: ignore[no-untyped-def]
            # no self.log here: logging from on_order_event for OrderInitialized raised "Already mutably borrowed" in rc7
            OneOrder.events.append(type(event).__name__)
            if type(event).__name__ == "OrderAccepted":
                self.cancel_order(event.client_order_id)  # 2.0: Strategy.cancel_order takes the ClientOrderId

    builder = (LiveNode.builder("NT2-SPIKE", TraderId("SPIKE-001"), Environment.LIVE)
               .with_logging(LoggerConfig(stdout_level=LogLevel.DEBUG if args.debug else LogLevel.INFO,
                                            is_colored=False))
               .with_timeout_connection(15)
               .with_reconciliation(args.reconciliation)
               .add_data_client(None, BinanceDataClientFactory(), data))
    if not args.no_exec:
        builder = builder.add_exec_client(None, BinanceExecutionClientFactory(), exec_)
    t0 = time.monotonic()
    live = builder.build()
    _log(f"node built in {time.monotonic() - t0:.2f} s")
    probe = Probe()
    live.add_actor(probe)
    if args.order:
        live.add_strategy(OneOrder())
    handle = live.handle()
    states: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            s = str(handle.state)
            if not states or states[-1] != s:
                states.append(s)
                _log(f"t={time.monotonic() - t0:.1f}s node state {s}")
            time.sleep(0.25)
        _log("stopping after", args.seconds, "s")
        handle.stop()
    threading.Thread(target=watch, daemon=True).start()
    try:
        live.run()
    except Exception as exc:  # the spike wants the message, not a traceback
        _log("node.run raised", type(exc).__name__, exc)
    _log("states", states, "probe counts", Probe.counts, "order events", OneOrder.events)
    print(json.dumps({"states": states, "counts": Probe.counts, "order_events": OneOrder.events}), flush=True)
    live.dispose()
    return 0


# --------------------------------------------------------------------------------------------- run (both)
def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    me = str(Path(__file__).resolve())
    venue_log = (out / "venue.log").open("w")
    v = subprocess.Popen([args.lab_python, me, "venue", "--out", str(out), "--binance-api", args.binance_api], stdout=subprocess.PIPE, stderr=venue_log,
                         text=True, cwd=REPO)
    try:
        assert v.stdout is not None
        urls = json.loads(v.stdout.readline())
        _log("venue", urls)
        extra = ["--market-data", args.market_data] + (["--no-ws-trading"] if args.no_ws_trading else [])
        extra += ["--no-exec"] if args.no_exec else []
        extra += ["--reconciliation"] if args.reconciliation else []
        extra += ["--us"] if args.us else []
        extra += ["--debug"] if args.debug else []
        extra += ["--order"] if args.order else []
        extra += ["--product", args.product]
        extra += ["--ed25519"] if args.ed25519 else []
        for flag in ("ws_data", "ws_exec", "ws_trading_url"):
            if getattr(args, flag):
                extra += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
        with (out / "node.log").open("w") as node_log:
            t0 = time.monotonic()
            rc = subprocess.call([args.nt2_python, me, "node", "--http", urls["http"], "--ws", urls["ws"],
                                  "--seconds", str(args.seconds), *extra], stdout=node_log, stderr=subprocess.STDOUT,
                                 timeout=args.seconds + 60)
            _log(f"node exited {rc} after {time.monotonic() - t0:.1f} s")
    finally:
        v.terminate()
        v.wait(timeout=10)
        venue_log.close()
    print((out / "venue.log").read_text())
    print((out / "node.log").read_text())
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role", required=True)
    for name in ("run", "node"):
        s = sub.add_parser(name)
        s.add_argument("--seconds", type=float, default=20)
        s.add_argument("--market-data", choices=("json", "sbe"), default="json")
        s.add_argument("--product", choices=("spot", "usd_m"), default="spot", help="BinanceProductType (the venue serves Spot only)")
        s.add_argument("--no-ws-trading", action="store_true", help="use_ws_trading=False (the adapter's default is True)")
        s.add_argument("--no-exec", action="store_true", help="data client only")
        s.add_argument("--reconciliation", action="store_true")
        s.add_argument("--us", action="store_true", help="us=True: the only switch that makes the Spot REST client ask for JSON")
        s.add_argument("--debug", action="store_true", help="NautilusTrader's log at DEBUG")
        s.add_argument("--ed25519", action="store_true", help="an Ed25519 key instead of the HMAC secret")
        s.add_argument("--order", action="store_true", help="add a strategy: one LIMIT BUY, cancelled once accepted")
        s.add_argument("--ws-data", help="the data client's base_url_ws; {ws} is the venue's WS URL (default: {ws})")
        s.add_argument("--ws-exec", help="the exec client's base_url_ws (default: {ws}/ws-api/v3)")
        s.add_argument("--ws-trading-url", help="the exec client's base_url_ws_trading ({ws} as above)")
    sub.choices["run"].add_argument("--nt2-python", default="/tmp/nt2-venv/bin/python")
    sub.choices["run"].add_argument("--lab-python", default=str(REPO / ".venv/bin/python"))
    sub.choices["run"].add_argument("--out", default="/tmp/nt2-spike")
    sub.add_parser("venue").add_argument("--out", default="/tmp/nt2-spike")
    for name in ("run", "venue"):
        sub.choices[name].add_argument("--binance-api", choices=("2025", "2026"), default="2026",
                                       help="the venue's profile (2025: REST listenKey too)")
    sub.choices["node"].add_argument("--http", required=True)
    sub.choices["node"].add_argument("--ws", required=True)
    args = p.parse_args()
    return {"run": run, "venue": venue, "node": node}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
