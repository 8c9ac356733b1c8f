"""Datasets as NautilusTrader ParquetDataCatalogs, instruments from a file, the engine's own reports (real NautilusTrader)."""

from __future__ import annotations

import csv
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import FIXTURES, SPECS, run_tc

pytestmark = pytest.mark.integration
CSV = FIXTURES / "data" / "btcusdt-1m-binance-format.csv"
INSTRUMENT = FIXTURES / "instruments" / "btcusdt-binance-spot.json"
BINANCE = ("--map", "ts_close=open_time", "--time-is", "open")


def _import(root: Path, dataset: str, *extra: str):
    return run_tc("data", "import", "--csv", str(CSV), "--id", dataset, *BINANCE, *extra, artifacts=root)


def _csv_bars(folder: Path) -> list[tuple]:
    with (folder / "bars.csv").open() as fh:
        return [(r["ts_close"], Decimal(r["open"]), Decimal(r["high"]), Decimal(r["low"]), Decimal(r["close"]), Decimal(r["volume"]))
                for r in csv.DictReader(fh)]


def _catalog_bars(folder: Path) -> list[tuple]:
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from opslab import clock

    bars = ParquetDataCatalog(str(folder / "catalog")).bars()
    return [(clock.iso_from_ns(b.ts_event), b.open.as_decimal(), b.high.as_decimal(), b.low.as_decimal(), b.close.as_decimal(),
             b.volume.as_decimal()) for b in bars]


def _dataset(root: Path) -> Path:
    return next((root / "datasets").iterdir())


def test_synthetic_and_imported_datasets_hold_a_catalog_equal_to_their_bars(tmp_path):
    root = tmp_path / "artifacts"
    assert run_tc("data", "prepare", "--spec", str(SPECS / "demo.yaml"), artifacts=root).code == 0
    assert _import(root, "btc-sample").code == 0
    for folder in sorted((root / "datasets").iterdir()):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert _catalog_bars(folder) == _csv_bars(folder) and len(_csv_bars(folder)) == manifest["rows"]
        files = sorted(p.relative_to(folder / "catalog").as_posix() for p in (folder / "catalog").rglob("*") if p.is_file())
        assert sorted(manifest["catalog"]["files"]) == files and len(files) == 2  # the bars and the instrument
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0
    again = run_tc("data", "prepare", "--spec", str(SPECS / "demo.yaml"), "--json", artifacts=root)
    assert again.json()["status"] == "ok"


def test_demo_reports_come_from_the_engine_and_validate(tmp_path):
    root = tmp_path / "artifacts"
    backtest = run_tc("run", "backtest", "--spec", str(SPECS / "demo.yaml"), "--json", artifacts=root)
    paper = run_tc("run", "paper", "--spec", str(SPECS / "paper-demo.yaml"), "--json", artifacts=root)
    assert backtest.code == 0 and paper.code == 0, backtest.err + paper.err
    counts = {}
    for run_id in ("demo", "paper-demo"):
        folder = root / "runs" / run_id
        docs = {name: json.loads((folder / f"{name}.json").read_text())[name] for name in ("orders", "fills", "positions")}
        counts[run_id] = (len(docs["orders"]), len(docs["fills"]), len(docs["positions"]), sum(not p["is_open"] for p in docs["positions"]))
        assert all(f["commission_currency"] == "USDT" and "." not in f["trade_id"] for f in docs["fills"])
        assert all(p["is_open"] == (p["ts_closed"] is None) for p in docs["positions"])
    # the counts the hand-written extraction gave before the engine's reports replaced it
    assert counts == {"demo": (48, 47, 24, 23), "paper-demo": (24, 23, 12, 11)}
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def test_a_tampered_catalog_is_refused_by_the_run_and_flagged_by_verify(tmp_path):
    root = tmp_path / "artifacts"
    assert run_tc("data", "prepare", "--spec", str(SPECS / "demo.yaml"), artifacts=root).code == 0
    folder = _dataset(root)
    bar_file = next((folder / "catalog" / "data" / "bar").rglob("*.parquet"))
    bar_file.write_bytes(bar_file.read_bytes()[:-1] + b"\0")
    verify = run_tc("artifacts", "verify", "--all", artifacts=root)
    assert verify.code == 4 and f"{bar_file.name}: changed (sha256 differs)" in verify.out
    run = run_tc("run", "backtest", "--spec", str(SPECS / "demo.yaml"), artifacts=root)
    assert run.code == 2 and bar_file.name in run.err and not (root / "runs").exists()
    # an extra file, and a link, in the catalog are found too
    prepared = run_tc("data", "prepare", "--spec", str(SPECS / "demo.yaml"), "--force", artifacts=root)
    assert prepared.code == 0 and run_tc("artifacts", "verify", "--all", artifacts=root).code == 0
    extra = folder / "catalog" / "data" / "bar" / bar_file.parent.name / "extra.parquet"
    extra.write_bytes(b"x")
    assert "extra.parquet: not in the manifest" in run_tc("artifacts", "verify", "--all", artifacts=root).out
    extra.unlink()
    os.symlink("/etc/hostname", extra)
    linked = run_tc("artifacts", "verify", "--all", artifacts=root)
    assert linked.code == 4 and "extra.parquet: is a symlink" in linked.out


def test_instrument_file_defines_the_dataset_and_the_engine_instrument(tmp_path):
    root = tmp_path / "artifacts"
    definition = json.loads(INSTRUMENT.read_text())
    definition["taker_fee"] = "0.002"  # twice the built-in test instrument's: every fill's commission says which one ran
    path = tmp_path / "instrument.json"
    path.write_text(json.dumps(definition))
    result = _import(root, "btc-sample", "--instrument-file", str(path), "--json")
    assert result.code == 0, result.err
    folder = root / "datasets" / "btc-sample"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["params"]["instrument_definition"] == "file:instrument.json"
    stored = json.loads((folder / "instrument.json").read_text())
    assert stored == {**definition, "schema_version": 1}
    assert all(-row[5].as_tuple().exponent == 5 for row in _csv_bars(folder))  # volumes at the file's size precision
    run = run_tc("run", "backtest", "--spec", str(SPECS / "byo-imported.yaml"), artifacts=root)
    assert run.code == 0, run.err
    fills = json.loads((root / "runs" / "byo-imported" / "fills.json").read_text())["fills"]
    assert fills and all(Decimal(f["commission"]) == (Decimal(f["quantity"]) * Decimal(f["price"]) * Decimal("0.002")).quantize(Decimal("0.00000001"))
                         for f in fills)
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0
    same = _import(root, "btc-sample", "--instrument-file", str(path), "--json")
    assert same.json()["status"] == "ok"
    other = _import(root, "btc-sample")  # the built-in instrument is other input
    assert other.code == 2 and "--force" in other.err


def _bad(tmp_path: Path, case: str) -> Path:
    good = json.loads(INSTRUMENT.read_text())
    path = tmp_path / "bad.json"
    if case == "missing":
        return tmp_path / "nope.json"
    if case == "folder":
        return tmp_path
    if case == "not-json":
        path.write_text("{not json")
    elif case == "oversized":
        path.write_text(json.dumps({**good, "info": {"pad": "x" * (70 << 10)}}))
    elif case == "missing-field":
        path.write_text(json.dumps({k: v for k, v in good.items() if k != "taker_fee"}))
    elif case == "wrong-type":
        path.write_text(json.dumps({**good, "price_precision": "2"}))
    elif case == "unknown-field":
        path.write_text(json.dumps({**good, "tick_size": "0.01"}))
    elif case == "other-venue":
        path.write_text(json.dumps({**good, "id": "BTCUSDT.COINBASE"}))
    elif case == "other-raw-symbol":
        path.write_text(json.dumps({**good, "raw_symbol": "BTCUSD"}))
    elif case == "other-base":
        path.write_text(json.dumps({**good, "id": "ETHUSDT.BINANCE", "raw_symbol": "ETHUSDT"}))  # base BTC
    elif case == "nautilus-refuses":
        path.write_text(json.dumps({**good, "price_precision": 3}))  # not the precision of price_increment 0.01
    return path


BAD = {
    "missing": "no such file", "folder": "is a directory", "not-json": "not valid JSON", "oversized": "larger than 65536 bytes",
    "missing-field": "/: missing required field 'taker_fee'", "wrong-type": "/price_precision: '2' is not of type 'integer'",
    "unknown-field": "unknown field(s)",
    "other-venue": "/id: expected a Binance spot symbol on BINANCE (SYMBOL.BINANCE, e.g. SOLUSDT.BINANCE), got 'BTCUSDT.COINBASE'",
    "other-raw-symbol": "/raw_symbol: expected 'BTCUSDT' (the symbol of its id), got 'BTCUSD'",
    "other-base": "/base_currency: 'BTC' then /quote_currency 'USDT' do not spell ETHUSDT",
    "nautilus-refuses": "NautilusTrader refuses the instrument",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_instrument_file_is_exit_2_with_one_line_and_nothing_written(tmp_path, case):
    root = tmp_path / "artifacts"
    path = _bad(tmp_path, case)
    result = _import(root, "btc-sample", "--instrument-file", str(path))
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}") and BAD[case] in lines[0], result.err
    assert "Traceback" not in result.err
    assert not root.exists()
