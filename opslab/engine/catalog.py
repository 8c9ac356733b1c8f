"""NautilusTrader's ParquetDataCatalog: the form a dataset is stored in for the engine, and the form
`tc data import --catalog` reads. Bars and instrument go in and come out through the catalog's own
writer and reader."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from decimal import Decimal
from typing import Any, Iterator

import pandas as pd
from nautilus_trader.core.nautilus_pyo3 import DataBackendSession
from nautilus_trader.model.data import Bar, BarType, capsule_to_list
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.wranglers import BarDataWrangler

from opslab import fs
from opslab.engine import instruments
from opslab.errors import InputError

MAX_CATALOG_BYTES = 1 << 30  # the bar files read for one import
STREAM_CHUNK = 1_000  # bars per chunk a backtest reads: 10k costs 10 MB more peak memory and is no faster


class BarsRefused(InputError):
    """NautilusTrader refuses to make bars of a dataset's rows (e.g. high below low)."""


def _bar_files(path: Path, bar_type: str) -> list[Path]:
    folder = path / "data" / "bar" / bar_type
    if not folder.is_dir():
        raise InputError(f"{path}: no bars of {bar_type} in this catalog (expected the folder {folder})")
    entries = sorted(folder.rglob("*"))
    special = [p for p in entries if not p.is_dir() and not stat.S_ISREG(p.stat().st_mode)]
    if special:  # a FIFO, device or socket (or a link to one): NautilusTrader's reader would block on it
        raise InputError(f"{special[0]}: is not a regular file (a catalog holds regular files only)")
    files = [p for p in entries if p.is_file()]
    if not files:
        raise InputError(f"{folder}: holds no files")
    size = sum(p.stat().st_size for p in files)
    if size > MAX_CATALOG_BYTES:
        raise InputError(f"{folder}: {size} bytes of bars, larger than the {MAX_CATALOG_BYTES} bytes one import reads")
    return files


def digest(path: Path, bar_type: str) -> str:
    """sha256 over the catalog's bar files for BAR_TYPE: each relative path and its content digest, in order."""
    outer = hashlib.sha256()
    for file in _bar_files(path, bar_type):
        inner = hashlib.sha256()
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                inner.update(chunk)
        outer.update(f"{file.relative_to(path).as_posix()}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def read_rows(path: Path | str, bar_type: str) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]:
    """The bars of BAR_TYPE in a user's catalog at PATH, in the catalog's order, as (close time in epoch seconds,
    open, high, low, close, volume); InputError when unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder (expected a NautilusTrader ParquetDataCatalog)")
    _bar_files(path, bar_type)
    try:
        bars = ParquetDataCatalog(os.fspath(path)).bars(bar_types=[bar_type])
    except Exception as exc:  # pyarrow/catalog errors on a damaged catalog
        raise InputError(f"{path}: not a readable ParquetDataCatalog: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not bars:
        raise InputError(f"{path}: the catalog holds no bars of {bar_type}")
    return [(bar.ts_event // 1_000_000_000, bar.open.as_decimal(), bar.high.as_decimal(), bar.low.as_decimal(), bar.close.as_decimal(),
             bar.volume.as_decimal()) for bar in bars]


def write(folder: Path, bars_csv: Path, definition: dict[str, Any], bar_type: str) -> None:
    """Write a dataset's catalog into FOLDER (a staging folder fs.install_dir gives): the instrument of
    DEFINITION and the bars of the canonical BARS_CSV, stamped at their close time. BarsRefused when
    NautilusTrader refuses a row."""
    instrument = instruments.build(definition, str(bars_csv))
    with fs.open_read(bars_csv) as fh:  # never through a link under the root
        frame = pd.read_csv(fh, index_col="ts_close")
    frame.index = pd.to_datetime(frame.index, utc=True)
    frame = frame[["open", "high", "low", "close", "volume"]]  # the wrangler reads columns by position
    try:
        bars = BarDataWrangler(BarType.from_str(bar_type), instrument).process(frame)
    except ValueError as exc:
        raise BarsRefused(f"{bars_csv}: NautilusTrader refuses a bar: {str(exc)[:300]}") from None
    # The catalog keeps bars in ts_init order; the engine sorted them so too (add_data), stably.
    bars.sort(key=lambda bar: bar.ts_init)
    ParquetDataCatalog(os.fspath(folder)).write_data([instrument, *bars])


def bars(folder: Path, bar_type: str, limit: int) -> list[Bar]:
    """The first LIMIT bars of a dataset's catalog (ts_init order), through the catalog's reader. Like
    every read of a dataset's catalog, the caller checked its files against the dataset manifest first."""
    return ParquetDataCatalog(os.fspath(folder)).bars(bar_types=[bar_type])[:limit]


def stream(folder: Path, bar_type: str, limit: int, chunk: int = STREAM_CHUNK) -> Iterator[list[Bar]]:
    """The first LIMIT bars of a dataset's catalog in lists of at most CHUNK, read lazily by the catalog's
    backend session (what NautilusTrader's BacktestNode streams with): a backtest never holds all bars."""
    session = ParquetDataCatalog(os.fspath(folder)).backend_session(Bar, identifiers=[bar_type], session=DataBackendSession(chunk_size=chunk))
    left = limit
    for capsule in session.to_query_result():
        if left <= 0:
            return
        part = capsule_to_list(capsule)[:left]
        left -= len(part)
        yield part
