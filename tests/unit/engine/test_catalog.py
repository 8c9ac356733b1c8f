"""engine/catalog.py's fast bar writer: the file NautilusTrader's own path writes, byte for byte, read back into the same
bars, and a backtest on it gives the same results (runs on every engine profile: 1.221.0 and 1.231.0); for the built-in
BTCUSDT's 1-minute and 1-hour bars and for ETHUSDT (an instrument file) too."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, REPO, SPECS
from opslab import market
from opslab.datasets import instruments as dataset_instruments
from opslab.engine import catalog, catalog_forms, instruments

BAR_TYPE = market.BAR_TYPE
START = 1_704_067_200
ETHUSDT_FILE = FIXTURES / "instruments" / "ethusdt-binance-spot.json"


def _iso(seconds: int) -> str:
    from opslab import clock

    return clock.iso_from_ns(seconds * 1_000_000_000)


def _money(units: int, decimals: int) -> str:
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // 10**decimals}.{units % 10**decimals:0{decimals}d}"


def _bars_csv(path: Path, rows: list[tuple[int, int, int, int, int, int]], size_decimals: int = 6) -> Path:
    """bars.csv in the lab's canonical form: (close time, open, high, low, close in cents, volume in 10^-SIZE_DECIMALS)."""
    lines = ["ts_close,open,high,low,close,volume\n"]
    lines += [f"{_iso(t)},{_money(o, 2)},{_money(h, 2)},{_money(lo, 2)},{_money(c, 2)},{_money(v, size_decimals)}\n"
              for t, o, h, lo, c, v in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    return path


def _series(n: int, seed: int = 3, step: int = 60) -> list[tuple[int, int, int, int, int, int]]:
    rng, price, out = random.Random(seed), 4_200_000, []
    for i in range(n):
        close = max(100, price + rng.randint(-2_000, 2_000))
        high, low = max(price, close) + rng.randint(0, 300), min(price, close) - rng.randint(0, 300)
        out.append((START + step * (i + 1), price, high, low, close, 0 if i % 97 == 0 else rng.randint(1, 5_000_000)))
        price = close
    return out


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path))
    return tmp_path


WAYS = ("recorded", "fast", "nautilus")


def _write_all(root: Path, bars_csv: Path, monkeypatch, bar_type: str = BAR_TYPE,
               definition: dict | None = None) -> tuple[dict[str, Path], set[str]]:
    """The catalog of BARS_CSV (bars of BAR_TYPE of DEFINITION, the built-in BTCUSDT's by default) written three ways:
    from the recorded forms without NautilusTrader (catalog_forms), by the fast writer with the installed NautilusTrader's
    forms, and by NautilusTrader's own path (Bar objects, its serializer). Returns the folders and the ways the fast code
    took (a way that declined fell back)."""
    definition = definition or instruments.built_in("test:BTCUSDT")
    folders, taken = {}, set()
    for way in WAYS:
        folders[way] = root / way
        folders[way].mkdir()
        with monkeypatch.context() as patch:
            if way == "recorded":
                real = catalog._write_recorded

                def spy(*args, real=real):
                    real(*args)
                    taken.add("recorded")

                patch.setattr(catalog, "_write_recorded", spy)
            else:
                patch.setattr(catalog_forms, "installed", lambda: None)
            if way == "fast":
                real = catalog._write_fast

                def spy(*args, real=real):
                    result = real(*args)
                    taken.add("fast")
                    return result

                patch.setattr(catalog, "_write_fast", spy)
            if way == "nautilus":
                patch.setattr(catalog, "_write_fast", lambda *a: (_ for _ in ()).throw(catalog._NotFast()))
            catalog.write(folders[way], bars_csv, definition, bar_type)
    return folders, taken


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


_BACKTEST = """
import json, sys
from pathlib import Path
from opslab import spec
from opslab.engine import catalog, catalog_forms, instruments, session as engine_session
folder, bars, demo = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
run_spec = spec.load(demo)
session = engine_session.build(run_spec, bars, instruments.build(instruments.built_in("test:BTCUSDT"), "test"))
session.engine.add_data_iterator("bars", catalog.stream(folder, catalog_bar_type := sys.argv[4], bars))
session.engine.run()
print(json.dumps(engine_session.read_state(session, "backtest", run_spec.run_id), sort_keys=True, default=str))
session.dispose()
"""


def _backtest(folder: Path, bars: int) -> dict:
    """The engine's state after a backtest of the demo spec on the first BARS bars of the catalog in FOLDER (in a child
    process: one BacktestEngine per process, as tc runs it)."""
    done = subprocess.run([sys.executable, "-c", _BACKTEST, str(folder), str(bars), str(SPECS / "demo.yaml"), BAR_TYPE],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("symbol, interval, n", [
    ("BTCUSDT", "1m", 60_123),  # past one WRITE_CHUNK (50,000), ending on a short row group
    ("BTCUSDT", "1h", 12_345),  # the built-in instrument's other intervals: the recorded forms with another folder and metadata
    ("ETHUSDT", "15m", 12_345),  # an instrument file: no recorded forms, the fast writer with NautilusTrader's own
])
def test_the_fast_writers_make_nautilus_traders_files_and_it_reads_them_back_alike(root, monkeypatch, symbol, interval, n):
    definition = dataset_instruments.read_file(ETHUSDT_FILE) if symbol == "ETHUSDT" else None
    bar_type = market.bar_type(f"{symbol}.BINANCE", interval)
    rows = _series(n, step=market.seconds(interval))
    bars_csv = _bars_csv(root / "d" / "bars.csv", rows, size_decimals=4 if definition else 6)
    folders, taken = _write_all(root, bars_csv, monkeypatch, bar_type, definition)
    assert taken == ({"fast"} if definition else {"recorded", "fast"})
    files = {way: _files(folder) for way, folder in folders.items()}
    assert files["recorded"] == files["nautilus"] and files["fast"] == files["nautilus"] and len(files["nautilus"]) == 2
    assert sorted(files["nautilus"])[0].startswith(f"data/bar/{bar_type}/")  # NautilusTrader's own folder for the bar type
    tables = {way: pq.read_table(next(f.glob(f"data/bar/{bar_type}/*.parquet"))) for way, f in folders.items()}
    for way in ("recorded", "fast"):
        assert tables[way].equals(tables["nautilus"]) and tables[way].schema.metadata == tables["nautilus"].schema.metadata
    assert tables["nautilus"].num_rows == n and tables["nautilus"].schema.metadata[b"bar_type"] == bar_type.encode()
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    read = {way: ParquetDataCatalog(str(f)).bars(bar_types=[bar_type]) for way, f in folders.items()}
    fields = {way: [(b.open, b.high, b.low, b.close, b.volume, b.ts_event, b.ts_init) for b in bars] for way, bars in read.items()}
    assert len(read["nautilus"]) == n and str(read["nautilus"][0].bar_type) == bar_type
    assert read["nautilus"][0].ts_init == (START + market.seconds(interval)) * 1_000_000_000
    for way in ("recorded", "fast"):
        assert read[way] == read["nautilus"] and fields[way] == fields["nautilus"]


def test_a_backtest_on_the_fast_files_gives_the_same_results(root, monkeypatch):
    # every bar of the catalog (a backtest that stops early leaves NautilusTrader's reader to panic at exit)
    folders, taken = _write_all(root, _bars_csv(root / "d" / "bars.csv", _series(3_000, seed=11)), monkeypatch)
    assert taken == {"recorded", "fast"}
    states = {way: _backtest(f, 3_000) for way, f in folders.items()}
    assert states["recorded"] == states["nautilus"] and states["fast"] == states["nautilus"]
    assert states["nautilus"]["counters"]["bars_processed"] == 3_000
    assert states["nautilus"]["counters"]["fills"] > 0  # the strategy traded: the results compared are not empty


@pytest.mark.parametrize("change, fast_path", [
    ({}, True),
    ({5: (START + 360, 11_258_999_068_426_23, 11_258_999_068_426_23, 1, 1, 0)}, True),  # just below 2^50 cents
    ({5: (START + 360, 11_258_999_068_426_25, 11_258_999_068_426_25, 1, 1, 0)}, False),  # just above: NautilusTrader's path
    ({5: (START + 360, 10, 10, 10, 10, -1)}, None),  # a negative volume: NautilusTrader refuses the bars either way
    ({5: (START + 360, 10, 9, 10, 10, 1)}, None),  # high below open: refused either way
    ({5: (START + 60, 10, 10, 10, 10, 1)}, False),  # out of time order: sorted by NautilusTrader's path
    ({5: (START + 300, -10, -5, -20, -10, 1)}, True),  # negative prices are prices
])
def test_edge_rows_are_written_alike_or_refused_alike(root, monkeypatch, change, fast_path):
    rows = _series(12, seed=5)
    for i, row in change.items():
        rows[i] = row
    bars_csv = _bars_csv(root / "d" / "bars.csv", rows)
    if fast_path is None:
        errors = []
        for way in WAYS:
            with monkeypatch.context() as patch:
                if way != "recorded":
                    patch.setattr(catalog_forms, "installed", lambda: None)
                if way == "nautilus":
                    patch.setattr(catalog, "_write_fast", lambda *a: (_ for _ in ()).throw(catalog._NotFast()))
                (root / way).mkdir()
                with pytest.raises(catalog.BarsRefused) as refused:
                    catalog.write(root / way, bars_csv, instruments.built_in("test:BTCUSDT"), BAR_TYPE)
            errors.append(str(refused.value).replace(str(root / way), "FOLDER"))
            assert not list((root / way).rglob("*"))  # nothing written
        assert errors[0] == errors[1] == errors[2]
        return
    folders, taken = _write_all(root, bars_csv, monkeypatch)
    assert taken == ({"recorded", "fast"} if fast_path else set())
    files = {way: _files(folder) for way, folder in folders.items()}
    assert files["recorded"] == files["nautilus"] and files["fast"] == files["nautilus"]
