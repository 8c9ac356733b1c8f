"""The floor of an import's cost: what writing an import's two data files costs with pyarrow, checking nothing.

Usage: python floor_import.py CSV OUT_DIR

It reads CSV with pyarrow's CSV reader (the baseline's read), writes the table as one Parquet file (the catalog's bar
file) and the CSV's bytes as they are (bars.csv's size, none of its canonical text), and fsyncs both, as `tc data import`
does. No conversion, no check, no manifest: any import that writes those two files from that read costs at least this.
bench_import.py reports it against the bare read, beside the import's own figure.
"""

from __future__ import annotations

import os
import sys

import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def _synced(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main(csv: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    table = pacsv.read_csv(csv)
    parquet = os.path.join(out, "bars.parquet")
    pq.write_table(table, parquet)
    _synced(parquet)
    copy = os.path.join(out, "bars.csv")
    with open(csv, "rb") as src, open(copy, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
