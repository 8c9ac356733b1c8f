"""NautilusTrader's ParquetDataCatalog: the form a dataset is stored in for the engine, and the form
`tc data import --catalog` reads. Bars and instrument come out through the catalog's own reader, and go in
through its own writer or, for the built-in instrument on a release whose forms are recorded
(engine/catalog_forms.py), as the same files written with pyarrow alone: NautilusTrader is imported only
where it is used (its import is half of a 200,000-bar import's time and memory), never at this module's top."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import threading
from pathlib import Path
from decimal import Decimal
from typing import Any, Iterator

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opslab import fs, market
from opslab.engine import catalog_forms, instruments
from opslab.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from nautilus_trader.model.data import Bar
    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from nautilus_trader.persistence.wranglers import BarDataWrangler

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
PARTIAL = "bars.parquet.partial"  # the bar file being written, in the catalog's staging folder
# The fast writer's read of bars.csv: bytes parsed at a time (cut at a line's end).
FAST_READ_BYTES = 1 << 20
BARS_CSV_COLUMNS = ("ts_close", "open", "high", "low", "close", "volume")  # a dataset's canonical bars.csv (datasets/store.py)
# A value whose integer form (value * 10^precision) is below this in magnitude becomes the same fixed-point raw value
# through NautilusTrader's float route (pandas' float, then Price(float, precision)) as through the exact decimal:
# the float's relative error (a few units of 2^-53) moves the integer form by less than 0.4.
FAST_MAX_UNITS = 1 << 50


class BarsRefused(InputError):
    """NautilusTrader refuses to make bars of a dataset's rows (e.g. high below low)."""


def _bar_folder(path: Path, bar_type: str) -> Path:
    """Where a catalog at PATH keeps BAR_TYPE's bar files (NautilusTrader's layout)."""
    return path / "data" / "bar" / bar_type


def _bar_files(path: Path, bar_type: str) -> list[Path]:
    folder = _bar_folder(path, bar_type)
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
    from nautilus_trader.model.data import Bar
    from nautilus_trader.serialization.arrow.schema import NAUTILUS_ARROW_SCHEMA

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
    from nautilus_trader.model.data import Bar
    from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

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


def _bar_class() -> type:
    from nautilus_trader.model.data import Bar

    return Bar


def file_name(first: int, last: int) -> str:
    """The catalog's name of a file of data from FIRST to LAST (ns): NautilusTrader's _timestamps_to_filename
    (2024-03-01T00-01-00-000000000Z_2024-03-01T01-00-00-000000000Z.parquet; tests/unit/engine/test_catalog_forms.py)."""
    def stamp(ns: int) -> str:
        seconds, rest = divmod(ns, 1_000_000_000)
        return f"{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%dT%H-%M-%S}-{rest:09d}Z"

    return f"{stamp(first)}_{stamp(last)}.parquet"


def _write_recorded(folder: Path, bars_csv: Path, forms: catalog_forms.Forms, bar_type: str) -> None:
    """The catalog of the built-in instrument's BAR_TYPE bars from its recorded forms: the bar file as _write_fast makes
    it, then the instrument's file (_install_recorded)."""
    partial = folder / PARTIAL
    try:
        definition = forms.definition
        first, last = _write_columns(bars_csv, partial, forms.bars(bar_type)[1], definition["price_precision"],
                                     definition["size_precision"], forms.fixed_precision, forms.price_max, forms.quantity_max,
                                     forms.rows_per_group)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _install_recorded(folder, forms, bar_type, first, last)


def _install_recorded(folder: Path, forms: catalog_forms.Forms, bar_type: str, first: int, last: int) -> None:
    """The bar file written to FOLDER/PARTIAL put in its place, then the instrument's file (NautilusTrader's write_data:
    the table, its row-group size, its name for ts_init 0)."""
    partial = folder / PARTIAL
    try:
        (folder / forms.bars(bar_type)[0]).mkdir(parents=True, exist_ok=True)
        partial.rename(folder / forms.bars(bar_type)[0] / file_name(first, last))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    (folder / forms.instrument_dir).mkdir(parents=True, exist_ok=True)
    pq.write_table(forms.instrument_table, folder / forms.instrument_dir / file_name(0, 0), row_group_size=forms.rows_per_group)


def _recorded(definition: dict[str, Any], bar_type: str) -> catalog_forms.Forms | None:
    """The recorded forms that write DEFINITION's BAR_TYPE bars, or None (NautilusTrader's own path then)."""
    forms = catalog_forms.installed()
    given = {k: v for k, v in definition.items() if k != "schema_version"}
    parsed = market.parse_bar_type(bar_type)
    return forms if forms is not None and given == forms.definition and parsed is not None and parsed[0] == given["id"] else None


class Feed:
    """The bar file of the recorded path, made from the bars while `tc data import` converts them to write bars.csv
    (`add`, block by block) rather than from bars.csv read again after; `write(..., fed=)` installs it. It gives up
    quietly where the recorded path does not go (another instrument or release, a row _BarFile does not vouch for):
    `write` then reads bars.csv as it always did. `close` drops an unfinished file (the import failed)."""

    def __init__(self, folder: Path, definition: dict[str, Any], bar_type: str) -> None:
        self.folder, self.bar_type = Path(folder), bar_type
        self.forms = _recorded(definition, bar_type)
        self.out: _BarFile | None = None
        if self.forms is not None:
            d = self.forms.definition
            try:
                self.out = _BarFile(self.folder / PARTIAL, self.forms.bars(bar_type)[1], d["price_precision"], d["size_precision"],
                                    self.forms.fixed_precision, self.forms.price_max, self.forms.quantity_max, self.forms.rows_per_group)
            except _NotFast:
                pass

    def add(self, seconds: np.ndarray, values: list[pa.Array] | None) -> None:
        """The bars closing at SECONDS with VALUES (open, high, low, close, volume: canonical text or decimals); None:
        a block whose values are not at hand (the file is then written from bars.csv)."""
        if self.out is None:
            return
        try:
            if values is None:
                raise _NotFast
            self.out.add(seconds, values)
        except _NotFast:
            self.close()

    def finish(self) -> tuple[int, int] | None:
        """(first, last) bar stamps of the finished file, or None when the feed gave up."""
        if self.out is None:
            return None
        out, self.out = self.out, None
        try:
            out.__exit__(None, None, None)
        except _NotFast:
            (self.folder / PARTIAL).unlink(missing_ok=True)
            return None
        return out.first, out.last

    def close(self) -> None:
        if self.out is not None:
            out, self.out = self.out, None
            with contextlib.suppress(Exception):
                out.__exit__(_NotFast, None, None)
            (self.folder / PARTIAL).unlink(missing_ok=True)


class _OutOfOrder(Exception):
    """A bar earlier than the one before it: the rows must be sorted before the writer takes them."""


def write(folder: Path, bars_csv: Path, definition: dict[str, Any], bar_type: str, fed: Feed | None = None) -> None:
    """Write a dataset's catalog into FOLDER (a staging folder fs.install_dir gives): the instrument of
    DEFINITION and the bars of the canonical BARS_CSV, stamped at their close time. BarsRefused when
    NautilusTrader refuses a row.

    Rows in time order stream through in chunks of WRITE_CHUNK into the one file NautilusTrader's
    write_data would make (its serializer, its row groups, its file name); out-of-order rows, up to
    MAX_UNSORTED_ROWS, are sorted in memory first, as the engine would sort them (stably, by ts_init).

    The fast writer (_write_fast) makes that same file byte for byte from the decimal columns, with no Bar
    objects; any row it cannot vouch for sends the whole file to NautilusTrader's own path (_write_stream).
    For the built-in instrument (its bars of any interval) on a release whose forms are recorded, NautilusTrader is not
    even imported unless a row sends the file to its path (_write_recorded); FED, a Feed given the bars as they were
    converted, has that file made already unless it gave up."""
    forms = _recorded(definition, bar_type)
    if forms is not None:
        span = fed.finish() if fed is not None else None
        if span is not None:
            return _install_recorded(Path(folder), forms, bar_type, *span)
        try:
            return _write_recorded(Path(folder), bars_csv, forms, bar_type)
        except _NotFast:
            pass
    from nautilus_trader.model.data import BarType
    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from nautilus_trader.persistence.wranglers import BarDataWrangler

    instrument = instruments.build(definition, str(bars_csv))
    catalog = ParquetDataCatalog(os.fspath(folder))
    wrangler = BarDataWrangler(BarType.from_str(bar_type), instrument)
    directory = Path(catalog._make_path(data_cls=_bar_class(), identifier=bar_type))
    partial = Path(folder) / PARTIAL
    try:
        try:
            try:
                first, last = _write_fast(catalog, wrangler, instrument, bars_csv, partial)
            except _NotFast:
                partial.unlink(missing_ok=True)
                first, last = _write_stream(catalog, wrangler, bars_csv, partial)
        except _OutOfOrder:
            partial.unlink(missing_ok=True)
            first, last = _write_sorted(catalog, wrangler, bars_csv, partial)
        directory.mkdir(parents=True, exist_ok=True)
        partial.rename(directory / file_name(first, last))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    catalog.write_data([instrument])  # last: a refused bar leaves the folder empty


def _frames(bars_csv: Path, chunk: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    with fs.open_read(bars_csv) as fh, pd.read_csv(fh, index_col="ts_close", chunksize=chunk) as reader:  # never through a link
        for frame in reader:  # (a reader given up early closes its text wrapper on the way out)
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
    bars = []
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


class _NotFast(Exception):
    """bars.csv holds a row the fast writer does not vouch for: NautilusTrader's own path writes the file."""


def _csv_blocks(bars_csv: Path) -> Iterator[pa.Table]:
    """bars.csv as tables of text columns, FAST_READ_BYTES at a time: parsed from bytes in memory (no file object
    handed to pyarrow, so no read-ahead thread outlives the read)."""
    names: list[str] | None = None
    rest = b""
    with fs.open_read(bars_csv) as fh:  # never through a link under the root
        while True:
            data = fh.read(FAST_READ_BYTES)
            text = rest + data
            cut = len(text) if not data else text.rfind(b"\n") + 1
            if not data and not text:
                return
            if cut <= 0:
                rest = text
                continue
            part, rest = text[:cut], text[cut:]
            options = pacsv.ReadOptions(use_threads=False, column_names=names, block_size=max(len(part), 1))
            table = pacsv.read_csv(pa.BufferReader(part), read_options=options,
                                   convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in BARS_CSV_COLUMNS}))
            names = names or table.column_names
            yield table
            if not data:
                return


def _raw(text: pa.Array | pa.ChunkedArray, precision: int, fixed_precision: int, limit: float, negative: bool) -> tuple[pa.Array, np.ndarray]:
    """(NautilusTrader's fixed-point raw values as 16-byte little-endian integers, the integer forms) of decimal
    TEXT (or decimals) at PRECISION; _NotFast when a value is not exactly one at PRECISION, or NautilusTrader's float
    route could give it another raw value, or Price/Quantity would refuse it (beyond LIMIT, negative when NEGATIVE is
    False)."""
    values = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    try:
        exact = values if pa.types.is_decimal128(values.type) and values.type.scale == precision else pc.cast(values, pa.decimal128(38, precision))
        raw = pc.cast(exact, pa.decimal128(38, fixed_precision))
    except pa.ArrowException:
        raise _NotFast from None
    words = np.frombuffer(exact.buffers()[1], dtype=np.int64, count=2 * len(exact), offset=16 * exact.offset)
    units, high = words[0::2], words[1::2]
    bound = min(FAST_MAX_UNITS, int(limit) * 10**precision)
    if not (high == (units >> 63)).all() or (np.abs(units) >= bound).any() or (not negative and (units < 0).any()):
        raise _NotFast
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(raw), [None, raw.buffers()[1]], offset=raw.offset), units


def _write_fast(catalog: ParquetDataCatalog, wrangler: BarDataWrangler, instrument: Any, bars_csv: Path, partial: Path) -> tuple[int, int]:
    """_write_columns with the installed NautilusTrader's own forms (any instrument, any release)."""
    from nautilus_trader.model.objects import FIXED_PRECISION, PRICE_MAX, QUANTITY_MAX
    from nautilus_trader.serialization.arrow.schema import NAUTILUS_ARROW_SCHEMA

    expected = NAUTILUS_ARROW_SCHEMA[_bar_class()]
    if any(expected.field(n).type != pa.binary(16) for n in ("open", "high", "low", "close", "volume")):
        raise _NotFast
    return _write_columns(bars_csv, partial, lambda table: _bar_schema(catalog, wrangler, table, bars_csv), instrument.price_precision,
                          instrument.size_precision, FIXED_PRECISION, PRICE_MAX, QUANTITY_MAX, catalog.max_rows_per_group)


def _write_columns(bars_csv: Path, partial: Path, schema: Any, price_precision: int, size_precision: int, fixed_precision: int,
                   price_max: float, quantity_max: float, rows_per_group: int) -> tuple[int, int]:
    """The file _write_stream writes, made with pyarrow alone from bars.csv's decimal text (_BarFile)."""
    with _BarFile(partial, schema, price_precision, size_precision, fixed_precision, price_max, quantity_max, rows_per_group) as out:
        for table in _csv_blocks(bars_csv):
            if not table.num_rows:
                continue
            try:
                seconds = pc.cast(pc.strptime(table["ts_close"], format="%Y-%m-%dT%H:%M:%SZ", unit="s"), pa.int64()).to_numpy()
            except pa.ArrowException:
                raise _NotFast from None
            out.add(seconds, [table[name] for name in ("open", "high", "low", "close", "volume")], table)
    return out.first, out.last


class _BarFile:
    """The file _write_stream writes, made with pyarrow alone from the bars' decimal values (text, or decimals at the
    instrument's precisions) a block at a time: measured (200,000 bars) 0.2 s against 1.8 s for NautilusTrader's Bar
    objects and serializer. SCHEMA (or a function of the first block's table giving it) is NautilusTrader's bar schema
    with its metadata; the raw values are the exact decimals at FIXED_PRECISION, the 16-byte little-endian integers
    NautilusTrader's high-precision build stores (the decimal128 buffer's layout); row groups of ROWS_PER_GROUP in steps
    of WRITE_CHUNK and the file name are its writer's. _NotFast (NautilusTrader's path takes over) for what this does
    not vouch for: another fixed precision, a value past FAST_MAX_UNITS or Price/Quantity's limits, a bar Bar refuses
    (high below low, ...), bars out of time order, no bars (at close)."""

    def __init__(self, partial: Path, schema: Any, price_precision: int, size_precision: int, fixed_precision: int,
                 price_max: float, quantity_max: float, rows_per_group: int) -> None:
        if fixed_precision != 16:
            raise _NotFast
        self.schema, self.precisions, self.fixed_precision = schema, (price_precision, size_precision), fixed_precision
        self.limits, self.rows_per_group = (price_max, quantity_max), rows_per_group
        self.first: int | None = None
        self.last: int | None = None
        self.pending: list[pa.Table] = []
        self.held = 0
        self.writer = _Writer(None, partial, rows_per_group)
        self.writing: threading.Thread | None = None
        self.failed: BaseException | None = None

    def add(self, seconds: np.ndarray, values: list[pa.Array], table: pa.Table | None = None) -> None:
        """The bars closing at SECONDS (epoch seconds) with VALUES (open, high, low, close, volume); TABLE, the block
        as bars.csv's text, is what a SCHEMA function reads."""
        last = self.last
        if (seconds < 0).any() or (np.diff(seconds) < 0).any() or (last is not None and seconds[0] * 1_000_000_000 < last):
            raise _NotFast
        nanos = seconds.astype(np.uint64) * np.uint64(1_000_000_000)
        # from the buffer, not pa.array(ndarray): that imports numpy.ma (5 ms) to ask whether it is a masked array
        stamps = pa.Array.from_buffers(pa.uint64(), len(nanos), [None, pa.py_buffer(nanos)])
        columns, units = [], []
        price_precision, size_precision = self.precisions
        for value in values[:4]:
            raw, unit = _raw(value, price_precision, self.fixed_precision, self.limits[0], True)
            columns.append(raw)
            units.append(unit)
        raw, _ = _raw(values[4], size_precision, self.fixed_precision, self.limits[1], False)
        columns.append(raw)
        o, h, lo, c = units
        if ((h < o) | (h < lo) | (h < c) | (lo > c) | (lo > o)).any():
            raise _NotFast
        if callable(self.schema):
            self.schema = self.schema(table)
        self.pending.append(pa.Table.from_arrays([*columns, stamps, stamps], schema=self.schema))
        self.held += len(seconds)
        self.first = int(seconds[0]) * 1_000_000_000 if self.first is None else self.first
        self.last = int(seconds[-1]) * 1_000_000_000
        if self.held >= self.rows_per_group:  # whole row groups as they fill: the same file as WRITE_CHUNK steps, less memory
            whole = self.held - self.held % self.rows_per_group
            chunk = pa.concat_tables(self.pending).combine_chunks()
            self._write(chunk.slice(0, whole))
            self.pending, self.held = [chunk.slice(whole)], self.held - whole

    def _write(self, table: pa.Table) -> None:
        """Write TABLE on a thread of its own, after the write before it: Parquet's encoding releases the GIL, so it runs
        while the caller converts the next block (about 0.07 s of a 200,000-bar import, otherwise added to its time)."""
        self._wait()
        self.writing = threading.Thread(target=self._run, args=(table,), name="bar-file-writer")
        self.writing.start()

    def _run(self, table: pa.Table) -> None:
        try:
            self.writer.write_table(table)
        except BaseException as exc:  # handed to the caller by _wait
            self.failed = exc

    def _wait(self) -> None:
        if self.writing is not None:
            self.writing.join()
            self.writing = None
        if self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed

    def __enter__(self) -> "_BarFile":
        return self

    def __exit__(self, kind: Any, *exc: object) -> None:
        try:
            self._wait()
            if kind is None and self.held:
                self.writer.write_table(pa.concat_tables(self.pending).combine_chunks())
        finally:
            if self.writing is not None:
                self.writing.join()
            self.writer.__exit__()
        if kind is None and self.first is None:
            raise _NotFast


def _bar_schema(catalog: ParquetDataCatalog, wrangler: BarDataWrangler, table: pa.Table, bars_csv: Path) -> pa.Schema:
    """The schema (with its metadata) NautilusTrader's serializer gives a table of this dataset's bars: its first bar's."""
    import pandas as pd

    line = ",".join(table[name][0].as_py() for name in BARS_CSV_COLUMNS)
    frame = pd.read_csv(io.StringIO(f"{','.join(BARS_CSV_COLUMNS)}\n{line}\n"), index_col="ts_close")  # as _frames reads it
    frame.index = pd.to_datetime(frame.index, utc=True)
    return catalog._objects_to_table(_wrangle(wrangler, frame, bars_csv), data_cls=_bar_class()).schema


class _Writer:
    """One Parquet file written chunk by chunk with NautilusTrader's serializer and row group size."""

    def __init__(self, catalog: ParquetDataCatalog | None, path: Path, rows_per_group: int | None = None) -> None:
        self.catalog, self.path, self.writer = catalog, path, None
        self.rows_per_group = rows_per_group or catalog.max_rows_per_group

    def write(self, bars: list[Bar]) -> None:
        self.write_table(self.catalog._objects_to_table(bars, data_cls=_bar_class()))

    def write_table(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(os.fspath(self.path), table.schema)
        self.writer.write_table(table, row_group_size=self.rows_per_group)

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()


def bars(folder: Path, bar_type: str, limit: int) -> list[Bar]:
    """The first LIMIT bars of a dataset's catalog (ts_init order), through the catalog's reader. Like
    every read of a dataset's catalog, the caller checked its files against the dataset manifest first."""
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    return ParquetDataCatalog(os.fspath(folder)).bars(bar_types=[bar_type])[:limit]


def stream(folder: Path, bar_type: str, limit: int, chunk: int = STREAM_CHUNK) -> Iterator[list[Bar]]:
    """The first LIMIT bars of a dataset's catalog in lists of at most CHUNK, a row group at a time (file after file,
    in the catalog's time order), decoded by NautilusTrader's own ArrowSerializer (what its catalog's pyarrow path
    reads with): a backtest never holds all bars. Not the catalog's DataFusion backend session (BacktestNode's way):
    its runtime held 61 MiB more for 100,000 bars on 1.231.0 (40 on 1.221.0) against 23 (28) here, at the same speed
    (docs/benchmarks.md). Like every read of a dataset's catalog, the caller checked its files against the dataset
    manifest first; a row group is at most the writer's 5,000 rows (write)."""
    from nautilus_trader.model.data import Bar
    from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

    left = limit
    # the files of the bar type's folder (checked against the dataset manifest), not _bar_files: an import's size bound
    # is not a backtest's
    for file in sorted(p for p in _bar_folder(folder, bar_type).iterdir() if p.is_file()):
        reader = pq.ParquetFile(file)
        for i in range(reader.num_row_groups):
            group = reader.read_row_group(i)
            for start in range(0, group.num_rows, chunk):
                if left <= 0:
                    return
                part = Bar.from_pyo3_list(ArrowSerializer.deserialize(data_cls=Bar, batch=group.slice(start, min(chunk, left))))
                left -= len(part)
                yield part
