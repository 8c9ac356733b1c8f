"""Issue 32 item 2 and 3: `tc run node` on a USD-M Futures spec (fixtures/specs/node-futures.yaml), on every engine profile.

A real TradingNode with NautilusTrader's real Binance USD-M data and execution clients trades the venue's perpetual
(BTCUSDT-PERP.BINANCE) with the built-in ops_smoke_futures strategy: it opens a long, adds, reduces, flips short in one
order and closes, cycle after cycle, and ends holding a short. The venue (real HTTP and WebSocket on 127.0.0.1) funds the
position every few bars over the user stream (ACCOUNT_UPDATE FUNDING_FEE). `tc reconcile` then compares the node's
position (side, quantity, entry price), open orders and wallet balance with the venue's own record, and finds them equal.
Each profile's engine runs in its own environment's Python (`make setup ENGINE=VERSION`); a profile without one skips.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import REPO, SPECS, node_root, tc_env
from opslab import spec
from opslab.datasets import store
from opslab.drills import matrix
from opslab.venue.server import BinanceVenue

pytestmark = pytest.mark.integration
CREDS = {"TC_BINANCE_API_KEY": "futures-key-abc123", "TC_BINANCE_API_SECRET": "futures-secret-def456"}
FOUND = matrix.environments(REPO)
FUNDING_EVERY_BARS = 25  # at the venue's bars 25 and 50 while the node runs its 60; the next, 75, comes 3 s after its stop (speed 300)


def _walk(fills: list[dict]) -> list[tuple[Decimal, Decimal]]:
    """The node's net position before and after each fill, in the venue's trade order."""
    steps, net = [], Decimal(0)
    for f in sorted(fills, key=lambda f: int(f["trade_id"])):
        after = net + (Decimal(f["quantity"]) if f["side"] == "BUY" else -Decimal(f["quantity"]))
        steps.append((net, after))
        net = after
    return steps


@pytest.mark.parametrize("profile", sorted(FOUND) or ["1.231.0"])
def test_a_futures_node_opens_adds_reduces_flips_is_funded_and_reconciles_clean(profile: str, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch):
    if profile not in FOUND:
        pytest.skip(f"no environment holds nautilus_trader {profile}: `make setup ENGINE={profile}` builds it")
    python = str(FOUND[profile].python)
    root = node_root(tmp_path, monkeypatch, CREDS)
    spec_file = SPECS / "node-futures.yaml"
    loaded = spec.load(spec_file)
    store.prepare(store.DatasetParams.from_spec(loaded.data))
    venue = BinanceVenue(loaded, speed=300, funding_every_bars=FUNDING_EVERY_BARS).start()
    try:
        node = subprocess.run([python, "-m", "opslab", "run", "node", "--spec", str(spec_file), "--venue-url", venue.url.rstrip("/"),
                               "--venue-ws-url", venue.futures_ws_url, "--json"], cwd=REPO, env=tc_env(root, **CREDS),
                              capture_output=True, text=True, timeout=180)
        recon = subprocess.run([python, "-m", "opslab", "reconcile", "--spec", str(spec_file), "--json"], cwd=REPO,
                               env=tc_env(root, **CREDS), capture_output=True, text=True, timeout=60)
        with venue.futures.lock:  # the payments and the wallet they made, at one moment
            funding = venue.futures.income_history("FUNDING_FEE", None, None, 1, 1000)
            wallet = venue.futures.wallet
    finally:
        venue.stop()
    assert node.returncode == 0, node.stderr[-3000:]
    assert "Traceback" not in node.stderr
    run_dir = root / "runs" / "node-futures"
    life = json.loads((run_dir / "node" / "lifecycle.json").read_text())
    assert life["state"] == "stopped" and life["stop_reason"] == "bars", life["stop_reason"]
    orders = json.loads((run_dir / "orders.json").read_text())["orders"]
    fills = json.loads((run_dir / "fills.json").read_text())["fills"]
    # 60 bars, a step every 4: three cycles of five market orders less the last close, and the resting limit buy
    assert len(orders) == 15 and len(fills) == 14 and {f["side"] for f in fills} == {"BUY", "SELL"}
    steps = _walk(fills)
    assert any(before > 0 > after for before, after in steps), f"a fill that takes the long through zero to a short: {steps}"
    assert any(before > 0 and after > before for before, after in steps), "a fill that adds to the long"
    assert any(after > 0 and before > after for before, after in steps), "a fill that reduces the long"
    assert any(before < 0 and after == 0 for before, after in steps), "a fill that closes the short"
    final = json.loads((run_dir / "final_state.json").read_text())
    [held] = final["positions"]
    assert held["instrument"] == "BTCUSDT-PERP.BINANCE" and held["side"] == "SHORT" and held["quantity"] == "0.01"
    last_sell = max((f for f in fills if f["side"] == "SELL"), key=lambda f: int(f["trade_id"]))
    assert Decimal(held["entry_price"]) == Decimal(last_sell["price"]), "a flipped position's entry is the flip's price"
    # the venue funded the position over the user stream while the node ran (and goes on after it stopped: the replay
    # runs on), and the node's wallet balance took every payment: it equals the venue's record at the node's stop, and
    # the wallet now is that record plus the payments made since (a short receives them: the wallet may only grow)
    record = json.loads((run_dir / "venue_record.json").read_text())
    assert 1 <= life["venue_counts"]["venue_funding_payments"] <= len(funding)
    assert final["balances"] == record["balances"]
    since = wallet - Decimal(record["balances"]["USDT"])
    assert since in {sum((Decimal(r["income"]) for r in funding[i:]), Decimal(0)) for i in range(len(funding) + 1)}, (since, funding)
    assert recon.returncode == 0, recon.stdout + recon.stderr
    report = json.loads((run_dir / "reconciliation.json").read_text())
    fields = {(c["kind"], c["field"]): c["status"] for c in report["checks"]}
    assert fields[("position", "entry_price")] == fields[("position", "quantity")] == fields[("balance", "total")] == "match"
    assert fields[("open_order", "price")] == "match", "the resting limit buy is open on both sides"


def test_a_strategy_of_ones_own_trades_the_perpetual_as_on_spot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The spec names the user's strategy (fixtures/strategies/labuser/meanrev.py, written for Spot): the lab gives it the
    perpetual's instrument id and bar type, and it trades, and reconciles, on the engine this suite runs on."""
    import yaml

    root = node_root(tmp_path, monkeypatch, CREDS)
    data = yaml.safe_load((SPECS / "node-futures.yaml").read_text())
    data.update(run_id="node-futures-byo", scenario={"name": "ops_smoke_demo", "version": "1.0.0"},
                strategy={"name": "meanrev", "version": "1", "strategy_path": "labuser.meanrev:MeanRev",
                          "config_path": "labuser.meanrev:MeanRevConfig", "config": {"window": 5, "trade_size": "0.01"},
                          "search_path": str(SPECS.parent / "strategies")})
    spec_file = tmp_path / "byo-futures.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    loaded = spec.load(spec_file)
    store.prepare(store.DatasetParams.from_spec(loaded.data))
    venue = BinanceVenue(loaded, speed=600).start()
    try:
        node = subprocess.run([sys.executable, "-m", "opslab", "run", "node", "--spec", str(spec_file), "--venue-url", venue.url.rstrip("/"),
                               "--venue-ws-url", venue.futures_ws_url, "--json"], cwd=REPO, env=tc_env(root, **CREDS),
                              capture_output=True, text=True, timeout=180)
        recon = subprocess.run([sys.executable, "-m", "opslab", "reconcile", "--spec", str(spec_file)], cwd=REPO, env=tc_env(root, **CREDS),
                               capture_output=True, text=True, timeout=60)
        venue_trades = len(venue.futures.trades)
    finally:
        venue.stop()
    assert node.returncode == 0, node.stderr[-3000:]
    run_dir = root / "runs" / "node-futures-byo"
    orders = json.loads((run_dir / "orders.json").read_text())["orders"]
    fills = json.loads((run_dir / "fills.json").read_text())["fills"]
    report = list(csv.DictReader(io.StringIO((run_dir / "node" / "reports" / "orders.csv").read_text())))
    assert orders and {o["instrument_id"] for o in report} == {"BTCUSDT-PERP.BINANCE"} and {o["strategy_id"] for o in report} == {"MeanRev-000"}
    assert len(fills) == venue_trades > 0
    assert recon.returncode == 0, recon.stdout + recon.stderr
