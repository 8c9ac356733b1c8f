"""Issue 29 item 3: a live node on an imported dataset of another instrument and interval, on every engine profile.

Binance's own ETHUSDT 15-minute klines (fixtures/data/binance/ETHUSDT-15m-2024-03-01.csv) are imported as they are; the
venue replays them (ethusdt@trade, @bookTicker, @depth, @kline_15m; klines of interval=15m) and lists BTCUSDT beside
them as a static book. A real TradingNode with the real Binance Spot adapter runs the user's strategy written for
Spot (fixtures/strategies/labuser/meanrev.py) on ETHUSDT.BINANCE-15-MINUTE-LAST-EXTERNAL bars, trades, and `tc reconcile`
finds the node and the venue's record equal (fixtures/specs/node-ethusdt.yaml).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from websockets.sync.client import connect

from conftest import FIXTURES, REPO, SPECS, node_root, run_tc, tc_env
from opslab import spec
from opslab.drills import matrix
from opslab.venue import profiles
from opslab.venue.server import BinanceVenue

pytestmark = pytest.mark.integration
CREDS = {"TC_BINANCE_API_KEY": "eth-key-abc123", "TC_BINANCE_API_SECRET": "eth-secret-def456"}
FOUND = matrix.environments(REPO)
KLINES = FIXTURES / "data" / "binance" / "ETHUSDT-15m-2024-03-01.csv"
SPEC = SPECS / "node-ethusdt.yaml"
SPEED = 3000  # dataset minutes per wall-clock minute: a 15-minute bar every 0.3 s


def _import(root: Path) -> None:
    result = run_tc("data", "import", "--csv", str(KLINES), "--id", "eth-15m", "--instrument-file",
                    str(FIXTURES / "instruments" / "ethusdt-binance-spot.json"), artifacts=root)
    assert result.code == 0, result.err


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_venue_replays_an_imported_dataset_of_its_own_symbol_and_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = node_root(tmp_path, monkeypatch, CREDS)
    _import(root)
    with BinanceVenue(spec.load(SPEC), speed=6000, replay_now=True) as venue:
        with connect(f"{venue.ws_url}/ws/ethusdt@kline_15m", open_timeout=5) as ws:
            kline, *later = [json.loads(ws.recv(timeout=10)) for _ in range(3)]  # three bars replayed (0.15 s each)
        with connect(f"{venue.ws_url}/ws", open_timeout=5) as ws:  # the lab's own stream is not this venue's market
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}))
            refused = json.loads(ws.recv(timeout=5))
        rows = venue.exchange.klines(5)
        base = venue.url.rstrip("/")
        wrong_interval = _get(f"{base}/api/v3/klines?symbol=ETHUSDT&interval=1m")
        btc_book = _get(f"{base}/api/v3/depth?symbol=BTCUSDT&limit=1")
        info = _get(f"{base}/api/v3/exchangeInfo?symbol=ETHUSDT")
    first = next(csv.reader(io.StringIO(KLINES.read_text())))
    assert kline["e"] == "kline" and kline["s"] == "ETHUSDT" and kline["k"]["i"] == "15m"
    assert kline["k"]["T"] - kline["k"]["t"] == 15 * 60_000 - 1 and kline["k"]["t"] % (15 * 60_000) == 0
    assert [k["k"]["t"] - kline["k"]["t"] for k in later] == [15 * 60_000, 30 * 60_000], "one interval apart"
    assert [Decimal(kline["k"][f]) for f in "ohlc"] == [Decimal(v) for v in first[1:5]], "the first kline is the file's first bar"
    assert refused["error"]["code"] == 2 and "unknown stream btcusdt@kline_1m" in refused["error"]["msg"]
    assert rows and all(r[6] - r[0] == 15 * 60_000 - 1 for r in rows) and rows[1][0] - rows[0][0] == 15 * 60_000
    assert wrong_interval == (400, {"code": -1120, "msg": "Invalid interval."})
    assert btc_book[0] == 200 and btc_book[1]["bids"][0][0] == "41999.99", "BTCUSDT is listed beside it as a static book"
    assert [f["tickSize"] for f in info[1]["symbols"][0]["filters"] if f["filterType"] == "PRICE_FILTER"] == ["0.01"]


@pytest.mark.parametrize("profile", sorted(FOUND) or ["1.231.0"])
def test_a_node_trades_imported_ethusdt_15m_klines_and_reconciles_clean(profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if profile not in FOUND:
        pytest.skip(f"no environment holds nautilus_trader {profile}: `make setup ENGINE={profile}` builds it")
    python = str(FOUND[profile].python)
    root = node_root(tmp_path, monkeypatch, CREDS)
    _import(root)
    venue = BinanceVenue(spec.load(SPEC), speed=SPEED, binance_api=profiles.for_nautilus(profile)).start()
    try:
        node = subprocess.run([python, "-m", "opslab", "run", "node", "--spec", str(SPEC), "--venue-url", venue.url.rstrip("/"),
                               "--venue-ws-url", venue.ws_url, "--json"], cwd=REPO, env=tc_env(root, **CREDS),
                              capture_output=True, text=True, timeout=180)
        recon = subprocess.run([python, "-m", "opslab", "reconcile", "--spec", str(SPEC), "--json"], cwd=REPO,
                               env=tc_env(root, **CREDS), capture_output=True, text=True, timeout=60)
        venue_trades = venue.exchange.my_trades(1000, symbol="ETHUSDT")
    finally:
        venue.stop()
    verify = subprocess.run([python, "-m", "opslab", "artifacts", "verify", "--all"], cwd=REPO, env=tc_env(root), capture_output=True,
                            text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the run and the venue's saved ETHUSDT state verify
    assert node.returncode == 0, node.stderr[-3000:]
    assert "Traceback" not in node.stderr
    run_dir = root / "runs" / "node-ethusdt"
    life = json.loads((run_dir / "node" / "lifecycle.json").read_text())
    assert life["state"] == "stopped" and life["stop_reason"] == "bars", life["stop_reason"]
    report = list(csv.DictReader(io.StringIO((run_dir / "node" / "reports" / "orders.csv").read_text())))
    assert report and {o["instrument_id"] for o in report} == {"ETHUSDT.BINANCE"} and {o["strategy_id"] for o in report} == {"MeanRev-000"}
    fills = json.loads((run_dir / "fills.json").read_text())["fills"]
    assert len(fills) == len(venue_trades) > 0
    # every fill is at the replayed ETHUSDT bars' prices (the book is five ticks of 0.01 around the last print)
    bars = list(csv.reader(io.StringIO(KLINES.read_text())))
    low, high = min(Decimal(b[3]) for b in bars), max(Decimal(b[2]) for b in bars)
    assert all(low - Decimal("0.05") <= Decimal(f["price"]) <= high + Decimal("0.05") for f in fills), (low, high, fills[:3])
    assert recon.returncode == 0, recon.stdout + recon.stderr
    checks = json.loads((run_dir / "reconciliation.json").read_text())["checks"]
    assert checks and all(c["status"] == "match" for c in checks)
    assert {c["key"] for c in checks if c["kind"] == "balance"} == {"ETH", "USDT"}
