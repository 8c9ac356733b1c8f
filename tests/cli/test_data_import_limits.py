"""`tc data import` at its limits: inputs it refuses (exit 2, one line naming the file, nothing written),
exact prices, the catalog pre-check, and peak memory that does not grow with the input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, tc_env

CSV = FIXTURES / "data" / "btcusdt-1m-binance-format.csv"
HEADER = "ts_close,open,high,low,close,volume\n"
BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
MAX_CSV_BYTES = 256 << 20


def _refused(lab, path: Path, needle: str) -> None:
    result = lab("data", "import", "--csv", str(path), "--id", "bad")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert needle in result.err and str(path) in result.err, result.err
    assert "Traceback" not in result.err
    assert not lab.root.exists()


@pytest.mark.parametrize("row, needle", [
    ("2024-01-01T00:01:00Z,1e400,2,1,1,1", "line 2: column open: '1e400' is out of range"),
    ("2024-01-01T00:01:00Z,1,2,1,1,123456789012345678901", "line 2: column volume: '123456789012345678901' is out of range"),
    ("2024-01-01T00:01:00Z,1,2,1,nan,1", "line 2: column close: 'nan' is not a finite number"),
    ("9999-12-31T23:59:00Z,1,2,1,1,1", "line 2: column ts_close: '9999-12-31T23:59:00Z' is outside the times tc takes"),
    ("0001-01-01T00:01:00Z,1,2,1,1,1", "line 2: column ts_close: '0001-01-01T00:01:00Z' is outside the times tc takes"),
    ("253402300740,1,2,1,1,1", "line 2: column ts_close: '253402300740' is outside the times tc takes"),
    ("2024-01-01T00:01:00Z,1,2,1,1,1,7", "line 2: 7 fields, the header has 6"),
])
def test_a_value_tc_cannot_hold_is_exit_2(lab, tmp_path, row, needle):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + row + "\n")
    _refused(lab, path, needle)


def test_the_bad_row_is_named_far_into_the_file(lab, tmp_path):
    """Past the first block of the reader (1 MiB): the line number still counts every line before it."""
    rows = [f"{1704067260 + 60 * i},100.00,101.00,99.00,100.50,1.5" for i in range(40_000)]
    rows[30_000] = rows[30_000].replace("101.00", "1e400")
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    _refused(lab, path, "line 30002: column high: '1e400' is out of range")


def test_a_100_mb_line_is_refused_without_reading_it_whole_every_time(lab, tmp_path):
    """Refused the same way on every run: the process exits while pyarrow's read-ahead thread is still inside the
    line; before the import waited for pyarrow to let go of the file, about 1 run in 20 died of SIGABRT instead."""
    path = tmp_path / "long.csv"
    with path.open("wb") as fh:
        fh.write(HEADER.encode() + b"2024-01-01T00:01:00Z,1,2,1,1,")
        fh.write(b"1" * (100 << 20))
        fh.write(b"\n")
    for _ in range(8):
        _refused(lab, path, "longer than 1048576 bytes")


def _gzip(tmp_path: Path) -> Path:
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress(CSV.read_bytes()))
    return path


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + "2024-01-01T00:01:00Z,1,2,1,1,1 \u00e9\n".encode("latin-1"))
    return path


def _utf16(tmp_path: Path) -> Path:
    path = tmp_path / "utf16.csv"
    path.write_bytes((HEADER + "2024-01-01T00:01:00Z,1,2,1,1,1\n").encode("utf-16"))
    return path


@pytest.mark.parametrize("make, needle", [
    (_gzip, "is gzip-compressed"),
    (_latin1, "not valid UTF-8 (byte 67)"),
    (_utf16, "UTF-16 text"),
])
def test_a_file_that_is_not_utf8_csv_is_named_for_what_it_is(lab, tmp_path, make, needle):
    _refused(lab, make(tmp_path), needle)


def test_prices_keep_their_exact_decimals_rounded_half_even(lab, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "2024-01-01T00:01:00Z,61000.005,61000.015,1E+4, 60999.9949999999999999999 ,0.0000005\n"
                    "2024-01-01T00:02:00Z,0.125,0.135,0.1,0.12,1.0000015\n")
    result = lab("data", "import", "--csv", str(path), "--id", "exact", "--max", "ohlc_inconsistent=5", "--max", "outliers=5")
    assert result.code == 0, result.err
    assert (lab.root / "datasets/exact/bars.csv").read_text() == (
        HEADER + "2024-01-01T00:01:00Z,61000.00,61000.02,10000.00,60999.99,0.000000\n"
        "2024-01-01T00:02:00Z,0.12,0.14,0.10,0.12,1.000002\n")


def test_verify_hint_names_the_command_of_the_datasets_kind(lab):
    assert lab("data", "import", "--csv", str(CSV), "--id", "mine", "--map", "ts_close=open_time", "--time-is", "open").code == 0
    with (lab.root / "datasets/mine/bars.csv").open("a") as fh:
        fh.write("tampered\n")
    result = lab("artifacts", "verify", "--all")
    assert result.code != 0
    report = result.out + result.err
    assert "tc data import --csv FILE --id mine --force" in report and "data prepare" not in report


# --- catalogs: refused from the Parquet footer, before NautilusTrader reads a byte ---------------------------

def _catalog(folder: Path) -> Path:
    """The fixture's bars in a real ParquetDataCatalog (NautilusTrader's writer); returns its bar file."""
    import pandas as pd
    from nautilus_trader.model.data import BarType
    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    frame = pd.read_csv(CSV)
    frame.index = pd.to_datetime(frame["open_time"] + 60_000, unit="ms", utc=True)
    instrument = TestInstrumentProvider.btcusdt_binance()
    bars = BarDataWrangler(BarType.from_str(BAR_TYPE), instrument).process(frame[["open", "high", "low", "close", "volume"]])
    catalog = ParquetDataCatalog(str(folder))
    catalog.write_data([instrument])
    catalog.write_data(bars)
    (file,) = (folder / "data" / "bar" / BAR_TYPE).iterdir()
    return file


def _another_table(file: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instrument_id": ["BTCUSDT.BINANCE"], "price": [1.5]}), file)


def _no_metadata(file: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    pq.write_table(table.replace_schema_metadata(None), file)


def _one_huge_row_group(file: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    n = 100_001
    big = table.take(pa.array([i % table.num_rows for i in range(n)]))
    stamps = pc.add(pa.array(range(n), pa.uint64()), pa.scalar(table["ts_init"][0].as_py(), pa.uint64()))
    big = big.set_column(5, "ts_event", stamps).set_column(6, "ts_init", stamps)
    pq.write_table(big.replace_schema_metadata(table.schema.metadata), file, row_group_size=n)


def _garbage(file: Path) -> None:
    file.write_bytes(b"PAR1 this is not a parquet file")


@pytest.mark.integration
@pytest.mark.parametrize("damage, needle", [
    (_another_table, "not a bar table: columns instrument_id: string, price: double"),
    (_no_metadata, "has no bar_type, price_precision, size_precision in its metadata"),
    (_one_huge_row_group, "row group 0 holds 100001 rows"),
    (_garbage, "not a Parquet file"),
])
def test_a_catalog_bar_file_that_is_not_nautilus_bars_is_exit_2(lab, tmp_path, damage, needle):
    file = _catalog(tmp_path / "catalog")
    damage(file)
    result = lab("data", "import", "--catalog", str(tmp_path / "catalog"), "--id", "bad")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert needle in result.err and str(file) in result.err, result.err
    assert not lab.root.exists()


# --- memory: peak RSS does not grow with the input --------------------------------------------------------------

def _peak_rss_mib(args: list[str], root: Path) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "opslab", *args], cwd=REPO, env=tc_env(root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 0, err
    return usage.ru_maxrss / 1024


def _bars_csv(path: Path, target_bytes: int) -> int:
    """A time-ordered CSV of about TARGET_BYTES (epoch-ms times, a repeated block of prices); returns its rows."""
    block = [(f"{100 + i % 7}.{i % 100:02d}", f"{108 + i % 7}.{i % 100:02d}", f"{99 + i % 7}.{i % 100:02d}", f"{100 + i % 7}.{(i + 1) % 100:02d}",
              f"{i % 5}.{i:06d}") for i in range(1000)]
    rows = 0
    with path.open("w") as fh:
        fh.write("open_time,open,high,low,close,volume\n")
        while fh.tell() < target_bytes:
            lines = [f"{1704067200000 + 60_000 * (rows + i)},{o},{h},{lo},{c},{v}\n" for i, (o, h, lo, c, v) in enumerate(block)]
            fh.write("".join(lines))
            rows += len(block)
    return rows


@pytest.mark.integration
def test_csv_import_peak_memory_does_not_grow_with_the_file(tmp_path):
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    _bars_csv(small, 1 << 20)
    rows = _bars_csv(big, MAX_CSV_BYTES - (4 << 20))
    assert big.stat().st_size <= MAX_CSV_BYTES
    args = ["data", "import", "--map", "ts_close=open_time", "--time-is", "open", "--max", "ohlc_inconsistent=100000000",
            "--max", "outliers=100000000", "--id", "m", "--csv"]
    small_peak = _peak_rss_mib([*args, str(small)], tmp_path / "a")
    big_peak = _peak_rss_mib([*args, str(big)], tmp_path / "b")
    manifest = json.loads((tmp_path / "b/datasets/m/manifest.json").read_text())
    assert manifest["rows"] == rows and manifest["catalog"]["files"]
    assert big_peak - small_peak < 150, (small_peak, big_peak)


@pytest.mark.integration
def test_catalog_import_peak_memory_does_not_grow_with_the_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = _catalog(tmp_path / "small")
    table = pq.read_table(file)
    n = 1_000_000
    big = table.take(pa.array([i % table.num_rows for i in range(n)]))
    stamps = pc.add(pc.multiply(pa.array(range(n), pa.uint64()), pa.scalar(60_000_000_000, pa.uint64())),
                    pa.scalar(table["ts_init"][0].as_py(), pa.uint64()))
    big = big.set_column(5, "ts_event", stamps).set_column(6, "ts_init", stamps).replace_schema_metadata(table.schema.metadata)
    folder = tmp_path / "big"
    (folder / "data" / "bar" / BAR_TYPE).mkdir(parents=True)
    pq.write_table(big, folder / "data" / "bar" / BAR_TYPE / file.name, row_group_size=5_000)
    del big, table
    args = ["data", "import", "--max", "ohlc_inconsistent=100000000", "--max", "outliers=100000000", "--id", "m", "--catalog"]
    small_peak = _peak_rss_mib([*args, str(tmp_path / "small")], tmp_path / "a")
    big_peak = _peak_rss_mib([*args, str(folder)], tmp_path / "b")
    assert json.loads((tmp_path / "b/datasets/m/manifest.json").read_text())["rows"] == n
    assert big_peak - small_peak < 150, (small_peak, big_peak)
