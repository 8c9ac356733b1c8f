"""Import benchmark: `tc data import --csv` of 200,000 one-minute bars vs pyarrow.csv.read_csv of the same file.

Both sides run as child processes (harness.measure: wall time and peak RSS by os.wait4), alternating;
the ratio is what matters. The subject does all an import does: two passes over the CSV (check,
then write bars.csv), the engine's catalog (NautilusTrader's bar and instrument files, written without
importing NautilusTrader on a release whose forms are recorded), the quality checks. `TC_BENCH_IMPORT_ROWS`
changes the size.
The second reports the floor under that ratio (floor_import.py: the same read, then a Parquet file and a copy of the CSV,
fsync'd, nothing checked) against the same bare read. The third imports Binance's kline zip as it is (inflated, parsed, times checked) against pyarrow's bare
read of the CSV inside.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

from harness import WORK, compare, installed_env

PY = sys.executable
ROWS = int(os.environ.get("TC_BENCH_IMPORT_ROWS", "200000"))


def _series(rows: int):
    """(open time in epoch ms, open, high, low, close in cents, volume) of ROWS deterministic one-minute bars."""
    price = 6_100_000  # cents
    for i in range(rows):
        step = (i * 7919) % 601 - 300
        close = max(100_000, price + step)
        yield 1709251200000 + 60_000 * i, price, max(price, close) + i % 50, min(price, close) - i % 37, close, (i * 104729) % 5_000_000 / 1e6
        price = close


def _write(path, header: str, lines) -> None:
    """HEADER then LINES, written 10,000 at a time."""
    with path.open("w") as fh:
        fh.write(header)
        batch = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 10_000:
                fh.write("".join(batch))
                batch.clear()
        fh.write("".join(batch))


def write_csv(path, rows: int) -> None:
    """A time-ordered Binance-style file (open time in epoch ms) of ROWS bars."""
    def cents(v: int) -> str:
        return f"{v // 100}.{v % 100:02d}"

    _write(path, "open_time,open,high,low,close,volume\n",
           (f"{t},{cents(o)},{cents(h)},{cents(lo)},{cents(c)},{vol:.6f}\n" for t, o, h, lo, c, vol in _series(rows)))


def write_klines(path, rows: int) -> None:
    """Binance's kline file as it is (no header, 12 columns, epoch ms, close_time the bar's last ms) and its zip beside it."""
    _write(path, "", (f"{t},{o / 100:.8f},{h / 100:.8f},{lo / 100:.8f},{c / 100:.8f},{vol:.8f},"
                      f"{t + 59_999},{i * 3.5:.8f},{100 + i % 700},{(i * 31) % 2_000_000 / 1e6:.8f},{i * 1.25:.8f},0\n"
                      for i, (t, o, h, lo, c, vol) in enumerate(_series(rows))))
    with zipfile.ZipFile(path.with_suffix(".zip"), "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, path.name)


def main() -> None:
    WORK.mkdir(exist_ok=True)
    csv = WORK / f"import-{ROWS}.csv"
    if not csv.exists():
        write_csv(csv, ROWS)
    root = WORK / "import-artifacts"
    env = installed_env(TC_ARTIFACTS_DIR=str(root))
    # --force: every round writes the dataset again (a second import of the same file would only say `ok`)
    subject = [PY, "-c", f"import shutil, sys; shutil.rmtree({str(root)!r}, ignore_errors=True); from opslab.cli import main; "
               f"sys.exit(main(['data', 'import', '--csv', {str(csv)!r}, '--id', 'bench', '--map', 'ts_close=open_time', "
               "'--time-is', 'open', '--max', 'outliers=1000000', '--max', 'ohlc_inconsistent=1000000']))"]
    baseline = [PY, "-c", f"import pyarrow.csv as c; c.read_csv({str(csv)!r})"]
    compare(f"tc data import --csv ({ROWS} rows, {csv.stat().st_size / 1e6:.1f} MB) vs pyarrow.csv.read_csv", subject, baseline,
            rounds=3, env=env, key="import_csv")
    # The floor: what writing the import's two data files from the same read costs, checking nothing (floor_import.py).
    # Its ratio to the bare read says how much of the target any import that writes bars.csv and a Parquet catalog has.
    floor = [PY, str(Path(__file__).with_name("floor_import.py")), str(csv), str(WORK / "import-floor")]
    compare(f"the floor: pyarrow's read, a Parquet file and a copy of the CSV, fsync'd ({ROWS} rows) vs pyarrow.csv.read_csv",
            floor, baseline, rounds=3, env=env, key="import_floor")
    shutil.rmtree(WORK / "import-floor", ignore_errors=True)
    klines = WORK / f"klines-{ROWS}.csv"
    if not klines.with_suffix(".zip").exists():
        write_klines(klines, ROWS)
    archive = klines.with_suffix(".zip")
    subject = [PY, "-c", f"import shutil, sys; shutil.rmtree({str(root)!r}, ignore_errors=True); from opslab.cli import main; "
               f"sys.exit(main(['data', 'import', '--csv', {str(archive)!r}, '--id', 'bench', "
               "'--max', 'outliers=1000000', '--max', 'ohlc_inconsistent=1000000']))"]
    names = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count", "taker_buy_volume",
             "taker_buy_quote_volume", "ignore"]
    baseline = [PY, "-c", f"import pyarrow.csv as c; c.read_csv({str(klines)!r}, read_options=c.ReadOptions(column_names={names!r}))"]
    compare(f"tc data import --csv of a Binance kline zip ({ROWS} rows, {archive.stat().st_size / 1e6:.1f} MB zipped) "
            "vs pyarrow.csv.read_csv of its CSV", subject, baseline, rounds=3, env=env, key="import_klines")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
