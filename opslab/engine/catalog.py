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
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.core.nautilus_pyo3 import DataBackendSession
from nautilus_trader.model.data import Bar, BarType, capsule_to_list
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.catalog import parquet as catalog_parquet
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.serialization.arrow.schema import NAUTILUS_ARROW_SCHEMA
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from opslab import fs
from opslab.engine import instruments
from opslab.errors import InputError

MAX_CATALOG_BYTES = 1 << 30  # the bar files read for one import
STREAM_CHUNK = 1_000  # bars per chunk a backtest reads: 10k costs 10 MB more peak memory and is no faster
# Bars per step of the catalog writer: a multiple of its row group (max_rows_per_group, 5,000), so the one
# file it leaves is byte for byte the file write_data makes from all bars at once.
WRITE_CHUNK = 50_000
# Out-of-order rows must be sorted before NautilusTrader's writer takes them: tc sorts this many in memory.
MAX_UNSORTED_ROWS = 500_000
# A row group of a user's bar file is read whole: about 1 KB of memory per bar once NautilusTrader holds it.
MAX_ROW_GROUP_ROWS = 100_000
MAX_ROW_GROUP_BYTES = 32 << 20  # uncompressed, as the file's metadata states it
BAR_METADATA = (b"bar_type", b"price_precision", b"size_precision")  # what NautilusTrader's bar decoder needs


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


def check_bar_files(path: Path | str, bar_type: str) -> list[Path]:
    """The bar files of BAR_TYPE in a user's catalog at PATH, each checked from its Parquet footer alone (pyarrow,
    before NautilusTrader reads a byte): NautilusTrader's bar schema and metadata, row groups within the bounds.
    InputError naming the file and what was expected."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder (expected a NautilusTrader ParquetDataCatalog)")
    expected = NAUTILUS_ARROW_SCHEMA[Bar]
    files = _bar_files(path, bar_type)
    for file in files:
        try:
            meta = pq.read_metadata(file)
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{file}: not a Parquet file ({str(exc)[:160]})") from None
        got = [(f.name, str(f.type)) for f in schema]
        want = [(f.name, str(f.type)) for f in expected]
        if got != want:
            raise InputError(f"{file}: not a bar table: columns {', '.join(f'{n}: {t}' for n, t in got)[:240]}; expected NautilusTrader's "
                             f"bar schema ({', '.join(f'{n}: {t}' for n, t in want)})")
        missing = [k.decode() for k in BAR_METADATA if k not in (schema.metadata or {})]
        if missing:
            raise InputError(f"{file}: the bar table has no {', '.join(missing)} in its metadata (NautilusTrader's writer puts them there)")
        if schema.metadata[b"bar_type"].decode(errors="replace") != bar_type:
            raise InputError(f"{file}: holds bars of {schema.metadata[b'bar_type'].decode(errors='replace')[:80]!r}, expected {bar_type}")
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            if group.num_rows > MAX_ROW_GROUP_ROWS or group.total_byte_size > MAX_ROW_GROUP_BYTES:
                raise InputError(f"{file}: row group {i} holds {group.num_rows} rows ({group.total_byte_size} bytes uncompressed), more than "
                                 f"the {MAX_ROW_GROUP_ROWS} rows or {MAX_ROW_GROUP_BYTES} bytes tc reads at once; write the catalog with "
                                 "smaller row groups (NautilusTrader's writer uses 5,000 rows)")
    return files


def read_rows(path: Path | str, bar_type: str) -> Iterator[list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]]:
    """The bars of BAR_TYPE in a user's catalog at PATH, one list per row group, file after file in the catalog's
    (time) order, as (close time in epoch seconds, open, high, low, close, volume). The files are checked first
    (check_bar_files); NautilusTrader's own decoder turns each row group into bars. InputError when unreadable."""
    files = check_bar_files(path, bar_type)
    found = False
    for file in files:
        try:
            reader = pq.ParquetFile(file)
            for i in range(reader.num_row_groups):
                bars = Bar.from_pyo3_list(ArrowSerializer.deserialize(data_cls=Bar, batch=reader.read_row_group(i)))
                found = found or bool(bars)
                yield [(bar.ts_event // 1_000_000_000, bar.open.as_decimal(), bar.high.as_decimal(), bar.low.as_decimal(),
                        bar.close.as_decimal(), bar.volume.as_decimal()) for bar in bars]
        except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{file}: not a readable bar file: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not found:
        raise InputError(f"{path}: the catalog holds no bars of {bar_type}")


class _OutOfOrder(Exception):
    """A bar earlier than the one before it: the rows must be sorted before the writer takes them."""


def write(folder: Path, bars_csv: Path, definition: dict[str, Any], bar_type: str) -> None:
    """Write a dataset's catalog into FOLDER (a staging folder fs.install_dir gives): the instrument of
    DEFINITION and the bars of the canonical BARS_CSV, stamped at their close time. BarsRefused when
    NautilusTrader refuses a row.

    Rows in time order stream through in chunks of WRITE_CHUNK into the one file NautilusTrader's
    write_data would make (its serializer, its row groups, its file name); out-of-order rows, up to
    MAX_UNSORTED_ROWS, are sorted in memory first, as the engine would sort them (stably, by ts_init)."""
    instrument = instruments.build(definition, str(bars_csv))
    catalog = ParquetDataCatalog(os.fspath(folder))
    wrangler = BarDataWrangler(BarType.from_str(bar_type), instrument)
    directory = Path(catalog._make_path(data_cls=Bar, identifier=bar_type))
    partial = Path(folder) / "bars.parquet.partial"
    try:
        try:
            first, last = _write_stream(catalog, wrangler, bars_csv, partial)
        except _OutOfOrder:
            partial.unlink(missing_ok=True)
            first, last = _write_sorted(catalog, wrangler, bars_csv, partial)
        directory.mkdir(parents=True, exist_ok=True)
        partial.rename(directory / catalog_parquet._timestamps_to_filename(first, last))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    catalog.write_data([instrument])  # last: a refused bar leaves the folder empty


def _frames(bars_csv: Path, chunk: int) -> Iterator[pd.DataFrame]:
    with fs.open_read(bars_csv) as fh:  # never through a link under the root
        for frame in pd.read_csv(fh, index_col="ts_close", chunksize=chunk):
            frame.index = pd.to_datetime(frame.index, utc=True)
            yield frame[["open", "high", "low", "close", "volume"]]  # the wrangler reads columns by position


def _wrangle(wrangler: BarDataWrangler, frame: pd.DataFrame, bars_csv: Path) -> list[Bar]:
    try:
        return wrangler.process(frame)
    except ValueError as exc:
        raise BarsRefused(f"{bars_csv}: NautilusTrader refuses a bar: {str(exc)[:300]}") from None


def _write_stream(catalog: ParquetDataCatalog, wrangler: BarDataWrangler, bars_csv: Path, partial: Path) -> tuple[int, int]:
    first = last = None
    with _Writer(catalog, partial) as writer:
        for frame in _frames(bars_csv, WRITE_CHUNK):
            bars = _wrangle(wrangler, frame, bars_csv)
            if not bars:
                continue
            stamps = [bar.ts_init for bar in bars]
            if (last is not None and stamps[0] < last) or any(b < a for a, b in zip(stamps, stamps[1:], strict=False)):
                raise _OutOfOrder
            first = stamps[0] if first is None else first
            last = stamps[-1]
            writer.write(bars)
    if first is None:
        raise BarsRefused(f"{bars_csv}: holds no bars")
    return first, last


def _write_sorted(catalog: ParquetDataCatalog, wrangler: BarDataWrangler, bars_csv: Path, partial: Path) -> tuple[int, int]:
    bars: list[Bar] = []
    for frame in _frames(bars_csv, WRITE_CHUNK):
        if len(bars) + len(frame) > MAX_UNSORTED_ROWS:
            raise BarsRefused(f"{bars_csv}: bars out of time order and more than {MAX_UNSORTED_ROWS} of them, the most tc sorts in memory "
                              "for NautilusTrader's catalog: sort the file by time and import it again")
        bars.extend(_wrangle(wrangler, frame, bars_csv))
    # The catalog keeps bars in ts_init order; the engine sorted them so too (add_data), stably.
    bars.sort(key=lambda bar: bar.ts_init)
    with _Writer(catalog, partial) as writer:
        for start in range(0, len(bars), WRITE_CHUNK):
            writer.write(bars[start:start + WRITE_CHUNK])
    return bars[0].ts_init, bars[-1].ts_init


class _Writer:
    """One Parquet file written chunk by chunk with NautilusTrader's serializer and row group size."""

    def __init__(self, catalog: ParquetDataCatalog, path: Path) -> None:
        self.catalog, self.path, self.writer = catalog, path, None

    def write(self, bars: list[Bar]) -> None:
        table = self.catalog._objects_to_table(bars, data_cls=Bar)
        if self.writer is None:
            self.writer = pq.ParquetWriter(os.fspath(self.path), table.schema)
        self.writer.write_table(table, row_group_size=self.catalog.max_rows_per_group)

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()


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
