"""Bring your own strategy and data: the lab's run control around a user's strategy (real NautilusTrader)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, REPO, SPECS, run_tc, tc_env, wait_for_paper_steps

pytestmark = pytest.mark.integration
BYO = SPECS / "byo-backtest.yaml"
BYO_PAPER = SPECS / "byo-paper.yaml"
CSV = FIXTURES / "data" / "btcusdt-1m-binance-format.csv"


def _copy_spec(tmp_path: Path, source: Path = BYO, **changes) -> Path:
    """SOURCE copied next to a copy of the fixture strategies, with top-level/strategy fields changed."""
    if not (tmp_path / "strategies").exists():
        shutil.copytree(FIXTURES / "strategies", tmp_path / "strategies")
    (tmp_path / "specs").mkdir(exist_ok=True)
    doc = yaml.safe_load(source.read_text())
    doc["strategy"].update(changes.pop("strategy", {}))
    doc.update(changes)
    path = tmp_path / "specs" / f"{doc['run_id']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_user_strategy_backtest_runs_under_the_lab(tmp_path):
    root = tmp_path / "artifacts"
    result = run_tc("run", "backtest", "--spec", str(BYO), "--json", artifacts=root)
    assert result.code == 0, result.err
    counters = result.json()["data"]["counters"]
    assert counters["bars_processed"] == 1440 and counters["orders_submitted"] > 0 and counters["fills"] > 0
    folder = root / "runs" / "byo-backtest"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["strategy"]["strategy_path"] == "labuser.meanrev:MeanRev"
    assert meta["strategy"]["source"][0]["module"] == "labuser.meanrev"
    orders = json.loads((folder / "orders.json").read_text())["orders"]
    assert {o["side"] for o in orders} == {"BUY", "SELL"}
    assert not (folder / "engine").exists()  # engine.log.level defaults to off: no log files
    assert run_tc("run", "backtest", "--spec", str(BYO), "--json", artifacts=root).json()["status"] == "ok"
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


_wait_for_steps = wait_for_paper_steps


def test_user_strategy_paper_is_halted_by_the_kill_switch_and_reconciled(tmp_path):
    root = tmp_path / "artifacts"
    proc = subprocess.Popen([sys.executable, "-m", "opslab", "run", "paper", "--spec", str(BYO_PAPER), "--json"], cwd=REPO,
                            env=tc_env(root, TC_TEST_STEP_DELAY_MS="300"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = root / "runs" / "byo-paper"
    _wait_for_steps(folder / "journal.jsonl", 2, proc)
    assert run_tc("killswitch", "engage", "--reason", "byo test", artifacts=root).code == 0
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    life = json.loads(out)["data"]["lifecycle"]
    assert life["stop_reason"] == "kill_switch" and life["steps_done"] < 12
    final = json.loads((folder / "final_state.json").read_text())
    assert final["source"] == "paper" and final["open_orders"] == []
    # reconciliation around the user's strategy: its own final state matches, a changed one does not
    expected = {k: final[k] for k in ("positions", "open_orders", "balances")}
    expected.update({"schema_version": 1, "source": "expected"})
    good = tmp_path / "expected.json"
    good.write_text(json.dumps(expected))
    assert run_tc("reconcile", "--spec", str(BYO_PAPER), "--expected", str(good), artifacts=root).code == 0
    expected["balances"]["USDT"] = "1"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(expected))
    assert run_tc("reconcile", "--spec", str(BYO_PAPER), "--expected", str(bad), artifacts=root).code == 4
    assert run_tc("killswitch", "release", "--reason", "done", artifacts=root).code == 0
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


BROKEN = {
    "import raises": ({"strategy_path": "labuser.broken:X", "config_path": "labuser.broken:Y"},
                      "importing module 'labuser.broken' failed: RuntimeError: this module is broken on purpose"),
    "no such class": ({"strategy_path": "labuser.meanrev:Nope"}, "module 'labuser.meanrev' has no class 'Nope'"),
    "not a strategy": ({"strategy_path": "labuser.meanrev:MeanRevConfig"}, "is not a NautilusTrader Strategy subclass"),
    "bad config value": ({"config": {"window": "twenty"}}, "/strategy/config: not a valid labuser.meanrev:MeanRevConfig"),
    "unknown config field": ({"config": {"windw": 3}}, "/strategy/config: not a valid labuser.meanrev:MeanRevConfig"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("command", ["backtest", "paper"])
def test_broken_strategy_is_exit_2_with_nothing_written(tmp_path, case, command):
    changes, needle = BROKEN[case]
    spec = _copy_spec(tmp_path, BYO if command == "backtest" else BYO_PAPER, strategy=changes)
    root = tmp_path / "artifacts"
    result = run_tc("run", command, "--spec", str(spec), artifacts=root)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}: /strategy/") and needle in lines[0], lines
    assert "Traceback" not in result.err
    assert not root.exists()


CRASHING = {"strategy_path": "labuser.crashing:Crashing", "config_path": "labuser.crashing:CrashingConfig", "config": {"crash_after_bars": 100}}


@pytest.mark.parametrize("command", ["backtest", "paper"])
def test_a_strategy_that_raises_mid_run_leaves_a_sealed_failed_run(tmp_path, command):
    spec = _copy_spec(tmp_path, BYO if command == "backtest" else BYO_PAPER, strategy=CRASHING)
    root = tmp_path / "artifacts"
    result = run_tc("run", command, "--spec", str(spec), artifacts=root)
    assert result.code == 1, result.err  # an unexpected error, reported as one line
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: crashing on purpose after 100 bars" in lines[0] and "Traceback" not in result.err, lines
    run_id = f"byo-{command}"
    assert f"{run_id}  failed  {command}" in run_tc("run", "list", artifacts=root).out
    folder = root / "runs" / run_id
    events = [json.loads(line)["event"] for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert events[-1] == f"{command}_failed" and f"{command}_completed" not in events and "paper_stopped" not in events
    assert (folder / "manifest.json").exists() and (folder / "report.md").exists()
    verified = run_tc("artifacts", "verify", "--all", artifacts=root)
    assert verified.code == 0, verified.out + verified.err


def _import(root: Path, csv: Path, dataset: str) -> int:
    return run_tc("data", "import", "--csv", str(csv), "--id", dataset, "--map", "ts_close=open_time", "--time-is", "open", artifacts=root).code


def _mutated_csv(tmp_path: Path, how: str) -> Path:
    rows = [line.split(",") for line in CSV.read_text().splitlines()]
    if how == "gap":
        del rows[50]
    else:  # ohlc: low above open
        rows[50][3] = str(float(rows[50][1]) + 50)
    path = tmp_path / f"{how}.csv"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


def test_imported_dataset_runs_and_a_failed_quality_is_refused_unless_accepted(tmp_path):
    root = tmp_path / "artifacts"
    assert _import(root, CSV, "btc-sample") == 0
    ok = run_tc("run", "backtest", "--spec", str(SPECS / "byo-imported.yaml"), "--json", artifacts=root)
    assert ok.code == 0, ok.err
    assert ok.json()["data"]["counters"]["bars_processed"] == 180
    assert _import(root, _mutated_csv(tmp_path, "gap"), "btc-gap") == 4
    spec = _copy_spec(tmp_path, SPECS / "byo-imported.yaml", run_id="gap", dataset={"kind": "imported", "id": "btc-gap"})
    refused = run_tc("run", "backtest", "--spec", str(spec), artifacts=root)
    assert refused.code == 4 and "quality failed (gaps;" in refused.err and "accept_failed_data_quality" in refused.err
    assert not (root / "runs" / "gap").exists()
    accepted = _copy_spec(tmp_path, SPECS / "byo-imported.yaml", run_id="gap-ok", dataset={"kind": "imported", "id": "btc-gap"},
                          safety={"accept_failed_data_quality": True})
    assert run_tc("run", "backtest", "--spec", str(accepted), artifacts=root).code == 0
    # rows NautilusTrader cannot turn into bars are refused even when the spec accepts failures
    assert _import(root, _mutated_csv(tmp_path, "ohlc"), "btc-ohlc") == 4
    fatal = _copy_spec(tmp_path, SPECS / "byo-imported.yaml", run_id="ohlc", dataset={"kind": "imported", "id": "btc-ohlc"},
                       safety={"accept_failed_data_quality": True})
    result = run_tc("run", "backtest", "--spec", str(fatal), artifacts=root)
    assert result.code == 4 and "ohlc_inconsistent cannot be accepted" in result.err
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def test_a_missing_imported_dataset_is_exit_2(tmp_path):
    root = tmp_path / "artifacts"
    result = run_tc("run", "backtest", "--spec", str(SPECS / "byo-imported.yaml"), artifacts=root)
    assert result.code == 2 and "tc data import" in result.err


@pytest.mark.parametrize("command", ["backtest", "paper"])
def test_engine_logs_go_to_the_run_folder_bounded(tmp_path, command):
    spec = _copy_spec(tmp_path, BYO if command == "backtest" else BYO_PAPER,
                      engine={**yaml.safe_load((BYO if command == "backtest" else BYO_PAPER).read_text())["engine"],
                              "log": {"level": "info", "max_bytes": 65536}})
    root = tmp_path / "artifacts"
    result = run_tc("run", command, "--spec", str(spec), artifacts=root)
    assert result.code == 0, result.err
    assert result.err == "" and result.out.count("\n") == 1  # nothing of the engine reaches the CLI
    run_id = yaml.safe_load(spec.read_text())["run_id"]
    logs = sorted((root / "runs" / run_id / "engine").iterdir())
    assert 1 <= len(logs) <= 2 and sum(p.stat().st_size for p in logs) <= 65536
    assert all(":" not in p.name for p in logs)
    assert any("[INFO]" in p.read_text() for p in logs)
    manifest = json.loads((root / "runs" / run_id / "manifest.json").read_text())
    assert all(f"engine/{p.name}" in manifest["files"] for p in logs)
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def _write_catalog(folder: Path) -> None:
    """The fixture CSV's bars written into a real ParquetDataCatalog (as a NautilusTrader user would)."""
    import pandas as pd
    from nautilus_trader.model.data import BarType
    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    frame = pd.read_csv(CSV)
    frame.index = pd.to_datetime(frame["open_time"] + 60_000, unit="ms", utc=True)  # close time
    instrument = TestInstrumentProvider.btcusdt_binance()
    bars = BarDataWrangler(BarType.from_str("BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"), instrument).process(
        frame[["open", "high", "low", "close", "volume"]])
    catalog = ParquetDataCatalog(str(folder))
    catalog.write_data([instrument])
    catalog.write_data(bars)


def test_catalog_import_gives_the_same_dataset_bytes_as_the_csv(tmp_path):
    root = tmp_path / "artifacts"
    _write_catalog(tmp_path / "catalog")
    assert _import(root, CSV, "from-csv") == 0
    result = run_tc("data", "import", "--catalog", str(tmp_path / "catalog"), "--id", "from-catalog", "--json", artifacts=root)
    assert result.code == 0, result.err
    manifests = [json.loads((root / "datasets" / d / "manifest.json").read_text()) for d in ("from-csv", "from-catalog")]
    assert manifests[1]["params"]["format"] == "catalog" and manifests[1]["rows"] == 180
    assert manifests[0]["fingerprint"] == manifests[1]["fingerprint"]
    again = run_tc("data", "import", "--catalog", str(tmp_path / "catalog"), "--id", "from-catalog", "--json", artifacts=root)
    assert again.json()["status"] == "ok"
    missing = run_tc("data", "import", "--catalog", str(tmp_path), "--id", "x", artifacts=root)
    assert missing.code == 2 and "no bars of BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL" in missing.err
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


KLINES = FIXTURES / "data" / "binance"
ETHUSDT_FILE = FIXTURES / "instruments" / "ethusdt-binance-spot.json"
SOLUSDT_FILE = FIXTURES / "instruments" / "solusdt-binance-spot.json"
BYO_ETH, BYO_ETH_PAPER = SPECS / "byo-ethusdt.yaml", SPECS / "byo-ethusdt-paper.yaml"
# (kline file, import options, spec changes, dataset id, counters of the backtest: bars, orders, fills, positions, the first
# fill's time). The same figures on every engine profile (1.221.0 and 1.231.0).
KLINE_RUNS = {
    "btcusdt-1h": (KLINES / "BTCUSDT-1h-2024-03-01.csv", (), {"instrument": "BTCUSDT", "run_id": "byo-btc-1h"}, "btc-1h",
                   (24, 8, 8, 2, "2024-03-01T13:00:00Z")),
    "ethusdt-15m": (KLINES / "ETHUSDT-15m-2024-03-01.csv", ("--instrument-file", str(ETHUSDT_FILE)), {}, "eth-15m",
                    (96, 38, 38, 6, "2024-03-01T02:30:00Z")),
    # an instrument the lab knows only from its file (any Binance spot pair): SOL's precisions, SOL's balance
    "solusdt-5m": (KLINES / "SOLUSDT-5m-2024-03-01.csv", ("--instrument-file", str(SOLUSDT_FILE)),
                   {"instrument": "SOLUSDT", "run_id": "byo-sol-5m"}, "sol-5m", (288, 136, 136, 18, "2024-03-01T01:00:00Z")),
}


@pytest.mark.parametrize("case", sorted(KLINE_RUNS))
def test_a_kline_files_interval_and_instrument_run_a_backtest_and_a_paper_run(tmp_path, case):
    file, options, changes, dataset, (bars, orders, fills, positions, first_fill) = KLINE_RUNS[case]
    root = tmp_path / "artifacts"
    imported = run_tc("data", "import", "--csv", str(file), "--id", dataset, *options, artifacts=root)
    assert imported.code == 0, imported.err
    engine = {"kind": "backtest", "starting_balances": {"USDT": "100000", changes.get("instrument", "ETHUSDT")[:3]: "1"}}
    spec = _copy_spec(tmp_path, BYO_ETH, dataset={"kind": "imported", "id": dataset}, engine=engine, **changes)
    result = run_tc("run", "backtest", "--spec", str(spec), "--json", artifacts=root)
    assert result.code == 0, result.err
    counters = result.json()["data"]["counters"]
    assert (counters["bars_processed"], counters["orders_submitted"], counters["fills"], counters["positions_opened"]) == (
        bars, orders, fills, positions)
    run_id = yaml.safe_load(spec.read_text())["run_id"]
    recorded = json.loads((root / "runs" / run_id / "fills.json").read_text())["fills"]
    assert recorded[0]["ts_event"] == first_fill  # on the dataset's bars: a 1h or 15m close
    symbol = yaml.safe_load(spec.read_text())["instrument"]
    final = json.loads((root / "runs" / run_id / "final_state.json").read_text())
    assert {p["instrument"] for p in final["positions"]} <= {f"{symbol}.BINANCE"}
    # the same bars as a paper lifecycle of 4 steps: the same orders and fills
    paper_engine = {**engine, "kind": "paper", "paper": {"steps": 4, "bars_per_step": bars // 4}}
    paper = _copy_spec(tmp_path, BYO_ETH_PAPER, dataset={"kind": "imported", "id": dataset}, engine=paper_engine,
                       **{**changes, "run_id": f"{run_id}-paper"})
    result = run_tc("run", "paper", "--spec", str(paper), "--json", artifacts=root)
    assert result.code == 0, result.err
    life = result.json()["data"]["lifecycle"]
    assert life["steps_done"] == 4 and life["stop_reason"] == "completed"
    paper_counters = json.loads((root / "runs" / f"{run_id}-paper" / "metrics.json").read_text())["counters"]
    assert (paper_counters["bars_processed"], paper_counters["orders_submitted"], paper_counters["fills"]) == (bars, orders, fills)
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def test_a_spec_must_trade_its_datasets_instrument(tmp_path):
    root = tmp_path / "artifacts"
    assert run_tc("data", "import", "--csv", str(KLINES / "BTCUSDT-1h-2024-03-01.csv"), "--id", "eth-15m", artifacts=root).code == 0
    result = run_tc("run", "backtest", "--spec", str(_copy_spec(tmp_path, BYO_ETH)), artifacts=root)
    assert result.code == 2 and "dataset eth-15m: holds BTCUSDT bars, the spec trades ETHUSDT" in result.err, result.err
    synthetic = _copy_spec(tmp_path, BYO, instrument="ETHUSDT")
    result = run_tc("run", "backtest", "--spec", str(synthetic), artifacts=root)
    assert result.code == 2 and "/instrument: ETHUSDT needs an imported dataset" in result.err, result.err
