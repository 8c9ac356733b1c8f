"""Datasets from the user: `tc data import` (CSV), `tc data check` (quality), the run's quality gate.

An imported dataset lives beside the synthetic ones (datasets/<id>/) in the same registered layout:
bars.csv in the lab's canonical form (close time first, prices at the instrument's precision; the
fingerprint covers these bytes), manifest.json (kind "imported", where the rows came from) and
quality.json (the checks of opslab/datasets/quality.py). The rows are kept as given (order, duplicates and
all), so the quality artifact describes the data the engine would see.

Memory does not grow with the input: a CSV is read by pyarrow's streaming reader in blocks of
BLOCK_BYTES (every column as text, so prices keep their exact decimal digits), a catalog one row
group at a time. A first pass checks and converts every row and hashes the input without writing
anything, keeping the converted blocks while they fit in CACHE_BYTES (else the second pass reads the
input again); the second writes bars.csv block by block through a temp file that is renamed into
place, and hands each block to the engine's catalog and the quality checks as it goes, so that
neither reads bars.csv again.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import os
import re
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from opslab import clock, contracts, digests, fs, market
from opslab.datasets import store, instruments, klines, quality
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result

COLUMNS = store.COLUMNS  # ts_close, open, high, low, close, volume: the documented input columns too
MAX_CSV_BYTES = 256 << 20
MAX_BARS_BYTES = 4 * MAX_CSV_BYTES  # a dataset's own bars.csv (canonical rows are shorter than the files they came from)
PROGRESS_EVERY_S = 2.0  # how often a long import says how far it is (tc data import on a terminal, or TC_PROGRESS=1)
RELEASE_WAIT_S = 5.0  # how long _release waits for pyarrow's read-ahead to let go of a file
ABANDONED_READER = False  # set once a pyarrow reader was given up mid-file: the process should then end by os._exit (cli.main.entry)
MAX_FILES = 400  # --csv files in one dataset (a year of Binance's daily files)
FORMATS = ("auto", "csv", klines.FORMAT)
CACHE_BYTES = 64 << 20  # Budget: the converted blocks one import keeps between its two passes
BLOCK_BYTES = 1 << 20  # the CSV reader's block: the longest line tc takes, and (with the block's rows) what one step holds
INSTRUMENTS = ("test:BTCUSDT",)  # built-in instrument definitions (opslab/engine/instruments.py)
DATASET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
EXIT_CHECK = EXIT_CODES["check"]
# Bar close times tc takes: NautilusTrader's and pandas' nanosecond timestamps end on 2262-04-11.
FIRST_TIME, END_TIME = 0, int(datetime(2262, 4, 11, tzinfo=timezone.utc).timestamp())
TIME_RANGE = "1970-01-01T00:00:00Z to 2262-04-10T23:59:59Z"
MAX_DIGITS = 20  # digits before the decimal point of a price or volume (what a decimal128(38, 18) holds)
_LIMIT = Decimal(10) ** MAX_DIGITS
_WIDE = Context(prec=80)  # quantizing a bounded number never overflows in this context
_FAST_SCALE = 18
_DIGITS = re.compile(r"[0-9]{1,20}")
# What the first bytes of a file that is not CSV text say it is.
_MAGIC = ((b"PK\x03\x04", "a ZIP archive: a Binance kline zip is imported as it is without --format csv; other archives: unzip them"),
          (b"\x1f\x8b", "gzip-compressed: decompress it and import the CSV"),
          (b"PAR1", "a Parquet file: a NautilusTrader catalog is imported with --catalog FOLDER"),
          (b"\xff\xfe", "UTF-16 text (it starts with a UTF-16 byte order mark): save it as UTF-8"),
          (b"\xfe\xff", "UTF-16 text (it starts with a UTF-16 byte order mark): save it as UTF-8"))


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def lean_memory() -> None:
    """Memory an import frees goes back to the system: pyarrow allocates through the system allocator (its default,
    mimalloc, keeps freed blocks), and glibc's mmap threshold is fixed at 512 KiB (glibc raises it after the first
    large free, so the blocks of a pass then pile up in the heap). Measured for 200,000 rows: 196 MiB peak RSS with
    mimalloc, 187 MiB with the system allocator, 173 MiB with the threshold fixed too (128 KiB: 168 MiB but 0.3 s more
    in page faults). The threshold is set where glibc is the C library."""
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 512 << 10)
    except (OSError, AttributeError):
        pass  # not glibc: its allocator keeps its own policy


class _NoPandas:
    """An import finder that says pandas is not installed (pyarrow_without_pandas, for one call)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is left out of this pyarrow process", name="pandas")


def pyarrow_without_pandas() -> None:
    """pyarrow's first conversion of a Python value (pa.scalar, pa.array, a compute call with a number) imports pandas,
    only to ask whether the value is a pandas object: about 0.13 s and 35 MB of a 200,000-bar import's 0.9 s and 176 MB.
    Nothing here hands it one, so pyarrow's one try to import pandas is made now and fails; it then takes no value for
    a pandas object. pandas itself stays importable, and pyarrow's own pandas calls (to_pandas, from_pandas) import
    it then. Nothing changes in a process that has pandas already."""
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.scalar(0)
    finally:
        sys.meta_path.remove(finder)


def check_dataset_id(dataset_id: str) -> str:
    """DATASET_ID if it is a safe folder name, else InputError."""
    if not DATASET_ID_RE.fullmatch(dataset_id or ""):
        raise InputError(f"dataset id {dataset_id!r}: expected lower-case letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit, at most 64 characters")
    return dataset_id


def quality_path(folder: Path) -> Path:
    """A dataset's quality artifact (the registry names it)."""
    return contracts.artifact("dataset_quality").in_folder(folder)


# --- reading a user's CSV ---------------------------------------------------------------------

class _Bad(ValueError):
    """One value a row cannot hold; the caller adds the file, line and column."""


def _epoch(text: str) -> int:
    """Epoch seconds of an RFC 3339 / ISO 8601 time (no zone = UTC) or an epoch number in s, ms, us or ns; _Bad otherwise."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        n = int(text)
        for scale in (10**9, 10**6, 10**3):  # by magnitude: ns, us, ms (a plausible year for each)
            if n >= scale * 10**8 * 10:
                return n // scale
        return n
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _Bad(f"{text[:40]!r} is not a time (expected RFC 3339 such as 2024-01-01T00:01:00Z, or epoch s/ms/us/ns)") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int(ts.timestamp())


def parse_time(text: str, where: str) -> int:
    """Epoch seconds of an RFC 3339 / ISO 8601 time (no zone = UTC) or an epoch number in s, ms, us or ns."""
    try:
        return _epoch(text)
    except _Bad as exc:
        raise InputError(f"{where}: {exc}") from None


def _close_time(text: str, shift: int) -> int:
    ts = _epoch(text) + shift
    if not FIRST_TIME <= ts < END_TIME:
        raise _Bad(f"{text.strip()[:40]!r} is outside the times tc takes ({TIME_RANGE} as a bar close time)")
    return ts


def _number(text: str, step: Decimal) -> str:
    """The canonical text of a price or volume: exact decimal, rounded half-even to STEP; _Bad when it is not one."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _Bad(f"{text[:40]!r} is not a number") from None
    if not value.is_finite():
        raise _Bad(f"{text[:40]!r} is not a finite number")
    if abs(value) >= _LIMIT:
        raise _Bad(f"{text.strip()[:40]!r} is out of range (at most {MAX_DIGITS} digits before the decimal point)")
    return str(value.quantize(step, context=_WIDE))


def parse_map(pairs: list[str]) -> dict[str, str]:
    """--map CANONICAL=THEIRS options as a mapping; InputError on an unknown canonical column."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        canon, sep, theirs = pair.partition("=")
        if not sep or canon not in COLUMNS or not theirs:
            raise InputError(f"--map {pair!r}: expected COLUMN=THEIR_NAME with COLUMN one of {', '.join(COLUMNS)}")
        mapping[canon] = theirs
    return mapping


def steps(definition: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """(price step, size step) of an instrument: 10^-precision (bars are stored at its precisions)."""
    return Decimal(1).scaleb(-definition["price_precision"]), Decimal(1).scaleb(-definition["size_precision"])


class Block:
    """Canonical rows: their close times (epoch seconds) and their prices as bars.csv holds them: decimals at the
    instrument's precisions (canonical_decimals: most files), or canonical texts (the row path). `texts`, `text` (the
    lines of bars.csv) and `columns` (what the quality checks scan) are made when first asked for (the writing pass);
    a block made from its lines (TEXT) has only those."""

    def __init__(self, ts: pa.Array, text: bytes | None = None, prices: list[pa.Array] | None = None) -> None:
        self.ts, self._text, self.prices = ts, text, prices
        self._texts: list[pa.Array] | None = None

    @property
    def nbytes(self) -> int:
        return self.ts.nbytes + sum(p.nbytes for p in self.prices or ()) + len(self._text or b"")

    @property
    def texts(self) -> list[pa.Array] | None:
        if self._texts is None and self.prices is not None:
            self._texts = [p if pa.types.is_string(p.type) else pc.cast(p, pa.string()) for p in self.prices]
        return self._texts

    @property
    def text(self) -> bytes:
        if self._text is None:
            self._text = _canonical_text(self.ts, self.texts)
        return self._text

    def columns(self) -> quality.Columns | None:
        """The block as the quality checks scan it (None for a block made from its lines): the prices' integer forms
        read off the decimals when their texts are plain (no exponent: at most 6 decimals, pyarrow's form), with the
        decimals themselves in place of the texts; else the texts. It leaves `texts` and `text` alone, so that another
        thread may make them meanwhile (_converge_import)."""
        if self.prices is None:
            return None
        if all(pa.types.is_decimal(p.type) and p.type.scale <= 6 for p in self.prices):
            units = [_units(p) for p in self.prices]
            if all(u is not None for u in units):
                return quality.Columns(self.ts.to_numpy(), self.prices, units)
        texts = [p if pa.types.is_string(p.type) else pc.cast(p, pa.string()) for p in self.prices]
        return quality.Columns(self.ts.to_numpy(), texts)


def _units(values: pa.Array) -> np.ndarray | None:
    """The decimals VALUES as exact integers (value * 10^scale), or None when one needs more than 64 bits."""
    words = np.frombuffer(values.buffers()[1], dtype=np.int64, count=2 * len(values), offset=16 * values.offset)
    low, high = words[0::2], words[1::2]
    return low.copy() if (high == (low >> 63)).all() else None


def canonical_decimals(values: pa.Array, step: Decimal) -> pa.Array:
    """VALUES (text, or exact decimals) rounded half-even to STEP, as decimal128(MAX_DIGITS + its scale, its scale);
    pa.ArrowInvalid when one is not a decimal of at most _FAST_SCALE decimals, or is out of range (the row path then
    names it). Their texts are those of _number, but for a negative value that rounds to zero (pyarrow's 0.00,
    Decimal's -0.00) and a value rounded up to 10^MAX_DIGITS (the row path takes it)."""
    scale = -step.as_tuple().exponent
    if scale > _FAST_SCALE:
        raise pa.ArrowInvalid("scale")
    kind = pa.decimal128(MAX_DIGITS + scale, scale)
    try:
        return pc.cast(values, kind)  # exact when no digit is dropped: one cast checks and converts most files' values
    except pa.ArrowInvalid:
        exact = values if pa.types.is_decimal(values.type) else pc.cast(values, pa.decimal128(MAX_DIGITS + _FAST_SCALE, _FAST_SCALE))
        return pc.cast(pc.round(exact, ndigits=scale, round_mode="half_to_even"), kind)


@dataclass
class Summary:
    """What the first pass over an input found: rows, first and last close time, the input's digest."""

    rows: int
    first: int
    last: int
    sha256: str
    interval: str = market.INTERVAL  # the bars' Binance interval (market.INTERVALS): a kline file's own, 1m for a plain CSV


def iso_seconds(ts: pa.Array) -> pa.Array:
    """RFC 3339 UTC texts (2024-03-01T00:01:00Z) of epoch seconds in tc's range: pyarrow's timestamp text with T and Z
    (five times faster than pc.strftime; the same text, tests/unit/datasets/test_imports.py)."""
    plain = pc.cast(pc.cast(ts, pa.timestamp("s")), pa.string())  # 2024-03-01 00:01:00
    return pc.binary_join_element_wise(pc.replace_substring(plain, " ", "T"), pa.scalar("Z"), "")


def _canonical_text(ts: pa.Array, prices: list[pa.Array]) -> bytes:
    stamps = iso_seconds(ts)
    table = pa.table([stamps, *prices], names=COLUMNS)
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return out.getvalue().to_pybytes()


class _Lines(threading.Thread):
    """A block's lines of bars.csv (Block.text), made on a thread of their own; `result` waits for them."""

    def __init__(self, block: Block) -> None:
        super().__init__(name="bars-csv-lines", daemon=True)
        self.block, self.text, self.failed = block, b"", None
        self.start()

    def run(self) -> None:
        try:
            self.text = self.block.text
        except BaseException as exc:  # raised by result, in the caller's thread
            self.failed = exc

    def result(self) -> bytes:
        self.join()
        if self.failed is not None:
            raise self.failed
        return self.text


def _summarize(blocks: Iterator[Block], label: str) -> tuple[int, int, int]:
    rows, first, last = 0, None, None
    for block in blocks:
        if len(block.ts):
            lo, hi = pc.min_max(block.ts).values()
            first = lo.as_py() if first is None else min(first, lo.as_py())
            last = hi.as_py() if last is None else max(last, hi.as_py())
            rows += len(block.ts)
    if not rows:
        raise InputError(f"{label}: has a header but no rows")
    return rows, first, last


class Meter:
    """How far an import's pass is, in rows, said through SAY when a pass starts and then at most once per
    PROGRESS_EVERY_S seconds (counted where the rows are converted: pyarrow reads the file ahead of them)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.stage, self.total, self.done, self.next = say, "", 0, 0, 0.0

    def start(self, stage: str, total: int = 0) -> None:
        self.stage, self.total, self.done, self.next = stage, total, 0, time.monotonic() + PROGRESS_EVERY_S
        self.say(f"import: {stage} ...")

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now >= self.next:
            self.next = now + PROGRESS_EVERY_S
            share = f"{min(100, 100 * self.done // self.total)}% ({self.done:,} of {self.total:,} rows)" if self.total else f"{self.done:,} rows"
            self.say(f"import: {self.stage}: {share}")


class _Input:
    """A user's file as pyarrow reads it: bounded, hashed, checked to be UTF-8 (the byte that is not, named)."""

    def __init__(self, path: Path, limit: int, fh: Any = None) -> None:
        self.path, self.limit = path, limit
        self.fh = fs.open_input(path, "CSV") if fh is None else fh
        if fh is not None:
            self.path = getattr(fh, "label", path)
        self.digest, self.size = hashlib.sha256(), 0
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            return b""  # see _release: pyarrow's read-ahead thread meets end-of-file once the reader is given up
        try:
            data = self.fh.read(min(n, BLOCK_BYTES) if n and n > 0 else BLOCK_BYTES)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc.strerror})") from None
        if self.size + len(data) > self.limit:
            raise InputError(f"{self.path}: larger than {self.limit} bytes (the limit for this file); nothing was read further")
        try:
            self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.path}: not valid UTF-8 (byte {self.size + exc.start})") from None
        self.digest.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.fh.close()


class _Feed:
    """What pyarrow holds of a source, and nothing else does: watched weakly, so _release knows when pyarrow let go."""

    __slots__ = ("source", "__weakref__")

    def __init__(self, source: _Input) -> None:
        self.source = source

    def read(self, n: int = -1) -> bytes:
        return self.source.read(n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.source.closed

    def close(self) -> None:
        self.source.close()


def _release(source: _Input, fed: weakref.ref) -> None:
    """Close SOURCE, then wait (bounded) until pyarrow lets go of FED, the _Feed it read SOURCE through.

    pyarrow's streaming CSV reader reads its file on a background IO thread (use_threads=False or not), and that
    thread holds the Python file object past the reader's end. A reader given up mid-file (a consumer that stops
    early, a refused line) leaves the thread to read and then release the object, which takes the GIL: a process
    exiting meanwhile aborts ("terminate called without an active exception": SIGABRT, exit 134 instead of 2 or 4) -
    measured before this wait in 1 of 20 refused 100 MB lines on Python 3.13 and 2 of 40 `tc data check` runs in the
    image; after it, 0 of 30 and 0 of 40. A closed SOURCE answers end-of-file, so the release takes a millisecond.
    Measured again once the import stopped importing NautilusTrader (its processes end sooner): 1 of 90, and once in
    the image's test run; so the process also records that it gave a reader up (ABANDONED_READER) and `tc` then ends
    without the interpreter's finalization, whose thread-pool teardown is what aborts (opslab.cli.main.entry)."""
    global ABANDONED_READER
    ABANDONED_READER = True
    source.close()
    deadline = time.monotonic() + RELEASE_WAIT_S
    while fed() is not None and time.monotonic() < deadline:
        time.sleep(0.001)


class Budget:
    """Memory for the converted blocks the checking pass keeps so that the writing pass need not read and convert the
    files again (all files of one import together): about 90 bytes a bar, so CACHE_BYTES holds 700,000 bars. A larger
    import reads its files twice, and its memory stays flat in their size."""

    def __init__(self, limit: int = 0) -> None:
        self.left = limit or CACHE_BYTES


class CsvSource:
    """A user's CSV, read in blocks as often as asked (a checking pass, then a writing pass)."""

    meter: Meter | None = None  # set by import_csv when the caller wants progress
    budget: Budget | None = None  # set by import_csv: the checking pass then keeps its blocks for the writing pass
    kept: list[Block] | None = None
    bytes = 0  # what the passes read of it (the file's size; a zip member's inflated size)
    interval = market.INTERVAL  # a plain CSV's bars: 1-minute unless --interval says otherwise (a kline file says its own)

    def __init__(self, path: Path, mapping: dict[str, str], time_is: str, step: tuple[Decimal, Decimal],
                 interval: str = market.INTERVAL) -> None:
        self.path, self.label, self.mapping, self.interval = path, str(path), mapping, interval
        self.shift = market.seconds(self.interval) if time_is == "open" else 0
        self.step = step
        self.index = self._header()

    def _header(self) -> dict[str, int]:
        with fs.open_input(self.path, "CSV") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_CSV_BYTES:
                raise InputError(f"{self.label}: larger than {MAX_CSV_BYTES} bytes (the limit for this file); nothing was read")
            self.bytes = size
            first = fh.read(BLOCK_BYTES)
        for magic, what in _MAGIC:
            if first.startswith(magic):
                raise InputError(f"{self.label}: is {what}")
        end = first.find(b"\n")
        if end < 0 and len(first) >= BLOCK_BYTES:
            raise InputError(f"{self.label}: line 1 is longer than {BLOCK_BYTES} bytes (the longest line tc reads)")
        line = first if end < 0 else first[:end]
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.label}: not valid UTF-8 (byte {exc.start})") from None
        header = [h.strip() for h in next(csv.reader([text.rstrip("\r")]), [])]
        if not any(header):
            raise InputError(f"{self.label}: is empty, expected a header line with {', '.join(COLUMNS)}")
        self.width = len(header)
        index = {}
        for canon in COLUMNS:
            name = self.mapping.get(canon, canon)
            if name not in header:
                raise InputError(f"{self.label}: line 1: no column {name!r} (for {canon}); the header has {', '.join(header)[:200]}; "
                                 "use --map COLUMN=THEIR_NAME")
            index[canon] = header.index(name)
        return index

    def _column(self, canon: str) -> str:
        return self.mapping.get(canon, canon)

    def scan(self) -> Summary:
        """The checking pass: every row converted; kept are counts, the time range, the input's sha256 and, while they
        fit in the budget, the converted blocks."""
        source = _Input(self.path, MAX_CSV_BYTES)
        rows, first, last = _summarize(self._keep(self._blocks(source)), self.label)
        self.sha256 = source.digest.hexdigest()
        return Summary(rows, first, last, self.sha256, self.interval)

    def blocks(self) -> Iterator[Block]:
        """The canonical rows, block by block: the checking pass's when it kept them, else read again (InputError if
        the file no longer has the bytes the checking pass read)."""
        if self.kept is not None:
            yield from self._kept()
            return
        source = _Input(self.path, MAX_CSV_BYTES)
        yield from self._blocks(source)
        if source.digest.hexdigest() != self.sha256:
            raise InputError(f"{self.label}: changed while it was imported; import it again")

    def _keep(self, blocks: Iterator[Block]) -> Iterator[Block]:
        """BLOCKS, kept (self.kept) while they fit in self.budget; all of them or none."""
        budget = self.budget
        self.kept = [] if budget is not None else None
        for block in blocks:
            if self.kept is not None:
                if block.nbytes <= budget.left:
                    self.kept.append(block)
                    budget.left -= block.nbytes
                else:
                    budget.left += sum(b.nbytes for b in self.kept)
                    self.kept = None
            yield block

    def _kept(self) -> Iterator[Block]:
        kept, self.kept = self.kept, None
        kept.reverse()
        while kept:
            block = kept.pop()  # the writing pass's memory shrinks as it goes
            self.budget.left += block.nbytes
            if self.meter is not None:
                self.meter.add(len(block.ts))
            yield block

    def _layout(self) -> tuple[list[str], list[str], int, str]:
        """(column names, the columns read in COLUMNS order, header lines, what a row's width is checked against)."""
        return [f"c{i}" for i in range(self.width)], [f"c{self.index[c]}" for c in COLUMNS], 1, "the header has"

    def _blocks(self, source: _Input) -> Iterator[Block]:
        names, wanted, skip, width = self._layout()
        invalid: list[Any] = []

        def refuse(row: Any) -> str:
            invalid.append(row)
            return "error"

        line = 1 + skip
        feed: _Feed | None = _Feed(source)
        fed, reader = weakref.ref(feed), None
        try:
            reader = pacsv.open_csv(
                feed,
                read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False, column_names=names, skip_rows=skip),
                parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=refuse),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in wanted}, include_columns=wanted,
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
            feed = None  # pyarrow's alone now
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                yield from self._convert(batch, line)
                line += batch.num_rows
                if self.meter is not None:
                    self.meter.add(batch.num_rows)
        except pa.ArrowInvalid as exc:
            if invalid:
                row = invalid[0]
                raise InputError(f"{self.label}: line {row.number}: {row.actual_columns} fields, {width} {row.expected_columns}") from None
            if "straddl" in str(exc):
                raise InputError(f"{self.label}: line {line} or one soon after is longer than {BLOCK_BYTES} bytes (the longest line tc reads)") from None
            raise InputError(f"{self.label}: not a CSV file tc can read after line {line - 1} ({str(exc)[:160]})") from None
        finally:
            reader = feed = None  # the last Python references: pyarrow winds its read-ahead down
            _release(source, fed)

    def _convert(self, batch: pa.RecordBatch, line: int) -> Iterator[Block]:
        columns = [batch.column(i) for i in range(len(COLUMNS))]
        blank = None
        for column in columns:
            empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0)
            blank = empty if blank is None else pc.and_(blank, empty)
            if not pc.any(blank).as_py():
                break  # no row blank so far: none is blank (most blocks stop at the first column)
        lines = None
        if pc.any(blank).as_py():  # whitespace-only rows, blank lines: skipped, as the csv module did
            keep = pc.invert(blank)
            lines = pc.add(pc.indices_nonzero(keep), line).to_pylist()
            columns = [pc.filter(c, keep) for c in columns]
            if not len(columns[0]):
                return
        converted = self._fast(columns)
        if converted is None:
            converted = self._slow(columns, lines or list(range(line, line + len(columns[0]))))
        yield Block(converted[0], prices=converted[1])

    def _fast(self, columns: list[pa.Array]) -> tuple[pa.Array, list[pa.Array]] | None:
        """Vectorized conversion of a block, or None when a value needs the row-by-row path (which names it)."""
        price_step, size_step = self.step
        try:
            ts = self._fast_times(columns[0])
            if ts is None:
                return None
            prices = [self._fast_number(c, price_step) for c in columns[1:5]] + [self._fast_number(columns[5], size_step)]
        except pa.ArrowException:
            return None
        return ts, prices

    def _fast_times(self, column: pa.Array) -> pa.Array | None:
        if pc.all(pc.match_substring_regex(column, r"^[0-9]{1,18}$")).as_py():
            n = pc.cast(column, pa.int64())
            n = pc.if_else(pc.greater_equal(n, 10**15), pc.divide(n, 10**6), pc.if_else(pc.greater_equal(n, 10**12), pc.divide(n, 10**3), n))
        else:
            try:
                n = pa.array([_epoch(text) for text in column.to_pylist()], pa.int64())
            except (_Bad, OverflowError):
                return None
        n = pc.add(n, self.shift)
        if not pc.all(pc.and_(pc.greater_equal(n, FIRST_TIME), pc.less(n, END_TIME))).as_py():
            return None
        return n

    def _fast_number(self, column: pa.Array, step: Decimal) -> pa.Array:
        """The canonical decimals of COLUMN at STEP; pa.ArrowInvalid when one needs the row path."""
        return canonical_decimals(column, step)

    def _slow(self, columns: list[pa.Array], lines: list[int]) -> tuple[pa.Array, list[pa.Array]]:
        """Row by row, as the csv module reader did: the first bad value stops the import with its line and column."""
        price_step, size_step = self.step
        texts = [c.to_pylist() for c in columns]
        ts, prices = [], [[] for _ in range(5)]
        for i, row in enumerate(zip(*texts, strict=True)):
            for k, canon in enumerate(COLUMNS):
                try:
                    if k == 0:
                        ts.append(_close_time(row[0], self.shift))
                    else:
                        prices[k - 1].append(_number(row[k], size_step if canon == "volume" else price_step))
                except (_Bad, OverflowError, ValueError) as exc:
                    why = exc if isinstance(exc, _Bad) else f"{row[k].strip()[:40]!r} is out of range"
                    raise InputError(f"{self.label}: line {lines[i]}: column {self._column(canon)}: {why}") from None
        return pa.array(ts, pa.int64()), [pa.array(p, pa.string()) for p in prices]


class KlineSource(CsvSource):
    """A Binance kline file as it is (opslab/datasets/klines.py): the zip or its CSV, 12 columns, no header or Binance's own;
    ts_close = close_time + 1 ms (or us), checked on every row against open_time + the file's interval (its first row's)."""

    def __init__(self, path: Path, step: tuple[Decimal, Decimal]) -> None:
        self.path, self.label, self.mapping, self.step, self.shift = path, str(path), {}, step, 0
        with fs.open_input(path, "CSV or ZIP") as fh:
            self.zipped = fh.read(4) == b"PK\x03\x04"
        if self.zipped:
            with klines.Member(path, MAX_CSV_BYTES) as member:
                shape = klines.sniff(member.read(BLOCK_BYTES))
                self.label, self.bytes = member.label, member.size
            if shape is None:
                raise InputError(f"{self.label}: not a Binance kline CSV (12 numeric columns, the first an epoch time in ms or us); "
                                 "unzip it and import the CSV with --map")
        else:
            with fs.open_input(path, "CSV") as fh:
                self.bytes = os.fstat(fh.fileno()).st_size
                if self.bytes > MAX_CSV_BYTES:
                    raise InputError(f"{self.label}: larger than {MAX_CSV_BYTES} bytes (the limit for this file); nothing was read")
                shape = klines.sniff(fh.read(BLOCK_BYTES))
        self.header = shape == "header"

    def _layout(self) -> tuple[list[str], list[str], int, str]:
        return list(klines.NAMES), ["close_time", *COLUMNS[1:], "open_time"], int(self.header), "a Binance kline has"

    def _input(self) -> tuple[_Input, Callable[[], str]]:
        if not self.zipped:
            source = _Input(self.path, MAX_CSV_BYTES)
            return source, lambda: source.digest.hexdigest()
        member = klines.Member(self.path, MAX_CSV_BYTES)
        return _Input(self.path, MAX_CSV_BYTES, member), lambda: member.digest

    def scan(self) -> Summary:
        source, digest = self._input()
        rows, first, last = _summarize(self._keep(self._blocks(source)), self.label)
        self.sha256, self.interval = digest(), self.clock.interval
        return Summary(rows, first, last, self.sha256, self.interval)

    def blocks(self) -> Iterator[Block]:
        if self.kept is not None:
            yield from self._kept()
            return
        source, digest = self._input()
        yield from self._blocks(source)
        if digest() != self.sha256:
            raise InputError(f"{self.label}: changed while it was imported; import it again")

    def _blocks(self, source: _Input) -> Iterator[Block]:
        self.clock = klines.Clock(self.label, END_TIME)
        yield from super()._blocks(source)

    def _convert(self, batch: pa.RecordBatch, line: int) -> Iterator[Block]:
        if not batch.num_rows:
            return
        ts = self.clock.seconds(batch.column(6), batch.column(0), line)
        columns = [batch.column(i) for i in range(1, 6)]
        price_step, size_step = self.step
        try:
            prices = [self._fast_number(c, price_step) for c in columns[:4]] + [self._fast_number(columns[4], size_step)]
        except pa.ArrowException:
            prices = [pa.array(p, pa.string()) for p in self._slow_prices([c.to_pylist() for c in columns], line)]
        yield Block(ts, prices=prices)

    def _slow_prices(self, texts: list[list[str]], line: int) -> list[list[str]]:
        price_step, size_step = self.step
        out: list[list[str]] = [[] for _ in texts]
        for k, (canon, values) in enumerate(zip(COLUMNS[1:], texts, strict=True)):
            for i, text in enumerate(values):
                try:
                    out[k].append(_number(text, size_step if canon == "volume" else price_step))
                except _Bad as exc:
                    raise InputError(f"{self.label}: line {line + i}: column {canon}: {exc}") from None
        return out


class Files:
    """Several files of one dataset (--csv repeated), in time order; overlapping files are refused."""

    def __init__(self, sources: list[CsvSource]) -> None:
        self.sources = sources

    def scan(self) -> Summary:
        summaries = sorted(((s.scan(), s) for s in self.sources), key=lambda pair: (pair[0].first, pair[0].last))
        intervals = {summary.interval for summary, _ in summaries}
        if len(intervals) > 1:
            shown = ", ".join(f"{s.label} ({summary.interval})" for summary, s in summaries[:4])
            raise InputError(f"--csv: {shown[:300]}: files of different intervals in one dataset; import each interval as its own dataset")
        for (before, a), (after, b) in itertools.pairwise(summaries):
            if after.first <= before.last:
                what = "the same bytes as" if after.sha256 == before.sha256 else "bars that overlap those of"
                raise InputError(f"{b.label}: {what} {a.label} (closes {_iso(after.first)} to {_iso(after.last)} against "
                                 f"{_iso(before.first)} to {_iso(before.last)}): the files of one dataset must follow each other")
        self.sources = [s for _, s in summaries]
        self.files = [{"file": s.path.name[:255], "sha256": summary.sha256} for summary, s in summaries]
        digest = hashlib.sha256("".join(f["sha256"] for f in self.files).encode()).hexdigest()
        return Summary(sum(s.rows for s, _ in summaries), summaries[0][0].first, summaries[-1][0].last, digest, intervals.pop())

    def blocks(self) -> Iterator[Block]:
        for source in self.sources:
            yield from source.blocks()


def _iso(seconds: int) -> str:
    return clock.iso_from_ns(seconds * 1_000_000_000)


def read_csv(path: Path | str, mapping: dict[str, str], time_is: str,
             step: tuple[Decimal, Decimal] = (Decimal("0.01"), Decimal("0.000001"))) -> list[quality.Row]:
    """The canonical rows of a user's CSV (small files: tests and tools); InputError names file, line, column."""
    source = CsvSource(Path(path), mapping, time_is, step)
    source.scan()
    return list(_rows_of(source.blocks))


class CatalogSource:
    """The bars of one bar type in a user's ParquetDataCatalog, a row group at a time (engine/catalog.py)."""

    def __init__(self, path: Path, bar_type: str, step: tuple[Decimal, Decimal]) -> None:
        self.path, self.label, self.bar_type, self.step = path, str(path), bar_type, step

    def scan(self) -> Summary:
        from opslab.engine import catalog

        rows, first, last = _summarize(self.blocks(), self.label)
        _, interval = market.parse_bar_type(self.bar_type) or ("", market.INTERVAL)
        return Summary(rows, first, last, catalog.digest(self.path, self.bar_type), interval)

    def blocks(self) -> Iterator[Block]:
        from opslab.engine import catalog

        price_step, size_step = self.step
        for group in catalog.read_rows(self.path, self.bar_type):
            ts, lines = [], []
            for ts_close, *values in group:
                if not FIRST_TIME <= ts_close < END_TIME:
                    raise InputError(f"{self.label}: a bar closes at {ts_close} s, outside the times tc takes ({TIME_RANGE})")
                try:
                    texts = [_number(str(v), price_step) for v in values[:4]] + [_number(str(values[4]), size_step)]
                except _Bad as exc:
                    raise InputError(f"{self.label}: the bar closing at {clock.iso_from_ns(ts_close * 1_000_000_000)}: {exc}") from None
                ts.append(ts_close)
                lines.append(f"{clock.iso_from_ns(ts_close * 1_000_000_000)},{','.join(texts)}\n")
            yield Block(pa.array(ts, pa.int64()), "".join(lines).encode())


def _rows_of(blocks: Callable[[], Iterator[Block]]) -> Iterator[quality.Row]:
    line = 1
    for block in blocks():
        for text in block.text.decode().splitlines():
            line += 1
            ts, o, h, lo, c, v = text.split(",")
            yield quality.Row(line, int(clock.epoch_seconds(ts)), Decimal(o), Decimal(h),
                              Decimal(lo), Decimal(c), Decimal(v))


def iter_dataset_blocks(folder: Path) -> Iterator[quality.Columns]:
    """The rows of a dataset's canonical bars.csv (synthetic or imported) as blocks of columns, streamed by pyarrow."""
    path = store.bars_path(folder)
    source = _Input(path, MAX_BARS_BYTES, fs.open_read(path))
    feed: _Feed | None = _Feed(source)
    fed, reader = weakref.ref(feed), None
    try:
        reader = pacsv.open_csv(feed, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS}))
        feed = None  # pyarrow's alone now
        for batch in reader:
            ts = pc.cast(pc.strptime(batch.column(0), format="%Y-%m-%dT%H:%M:%SZ", unit="s"), pa.int64())
            yield quality.Columns(ts.to_numpy(zero_copy_only=False), [batch.column(i) for i in range(1, 6)])
    finally:  # a consumer may stop early (quality's second pass does): see _release
        reader = feed = None
        _release(source, fed)


def iter_dataset_rows(folder: Path) -> Iterator[quality.Row]:
    """The rows of a dataset's canonical bars.csv (synthetic or imported), streamed in blocks by pyarrow."""
    line = 1
    for block in iter_dataset_blocks(folder):
        values = [column.to_pylist() for column in block.texts]
        for t, o, h, lo, c, v in zip(block.ts.tolist(), *values, strict=True):
            line += 1
            yield quality.Row(line, t, Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v))


def read_dataset_rows(folder: Path) -> list[quality.Row]:
    """The rows of a dataset's canonical bars.csv, as a list (small datasets: tests and tools)."""
    return list(iter_dataset_rows(folder))


# --- tc data import -----------------------------------------------------------------------------

def _check_options(dataset_id: str, instrument: str, time_is: str, instrument_file: Path | str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(instrument definition, its manifest params) after checking the options; InputError before anything is written."""
    check_dataset_id(dataset_id)
    if time_is not in ("open", "close"):
        raise InputError(f"--time-is {time_is!r}: expected open or close")
    if instrument_file is not None:
        definition = instruments.read_file(instrument_file)
        return definition, {"instrument_definition": f"file:{Path(instrument_file).name}"[:255],
                            "instrument_sha256": hashlib.sha256(fs.canonical_json(definition)).hexdigest()}
    if instrument not in INSTRUMENTS:
        raise InputError(f"--instrument {instrument!r}: expected one of {', '.join(INSTRUMENTS)} (the built-in test instruments), "
                         "or --instrument-file FILE")
    from opslab.engine import instruments as engine_instruments

    return engine_instruments.built_in(instrument), {"instrument_definition": instrument}


def input_format(path: Path, fmt: str) -> str:
    """The format of a --csv file: csv, or binance-klines (a zip, Binance's header, or a bare kline row) when FMT is auto."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    with fs.open_input(path, "CSV") as fh:
        shape = klines.sniff(fh.read(BLOCK_BYTES))
    return klines.FORMAT if shape else "csv"


def import_csv(path: Path | str | list[Path | str], dataset_id: str, mapping: dict[str, str] | None = None, time_is: str = "close",
               instrument: str = "test:BTCUSDT", settings: quality.Settings | None = None,
               force: bool = False, check: bool = False, instrument_file: Path | str | None = None, fmt: str = "auto",
               progress: Callable[[str], None] | None = None, interval: str | None = None) -> Result:
    """`tc data import --csv FILE...`: converge datasets/<id>/ to the files' rows in time order (a CSV, or Binance kline
    files as they are), then check their quality (exit 4 when it fails). INTERVAL is a plain CSV's bar interval (None:
    1m); a kline file says its own. PROGRESS, when given, hears how far each pass has read (every PROGRESS_EVERY_S seconds)."""
    lean_memory()
    pyarrow_without_pandas()
    definition, instrument_params = _check_options(dataset_id, instrument, time_is, instrument_file)
    if interval is not None and interval not in market.INTERVALS:
        raise InputError(f"--interval {interval!r}: expected a Binance kline interval ({', '.join(market.INTERVALS)})")
    mapping = mapping or {}
    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    if not paths or len(paths) > MAX_FILES:
        raise InputError(f"--csv: {len(paths)} files, expected 1 to {MAX_FILES}")
    formats = {input_format(p, fmt) for p in paths}
    if len(formats) > 1:
        raise InputError(f"--csv: {', '.join(map(str, paths))[:200]}: Binance kline files and other CSVs in one dataset; "
                         "import them separately (or force one reading with --format)")
    kind = formats.pop()
    if kind == klines.FORMAT:
        klines.check_options(mapping, time_is)
        if interval is not None:
            raise InputError(f"--interval {interval}: Binance kline files say their own interval (their rows' spacing); "
                             "leave --interval out, or read them as a plain CSV with --format csv")
        for p in paths:
            klines.check_symbol(p, definition["raw_symbol"], instrument_file is None)
        sources: list[CsvSource] = [KlineSource(p, steps(definition)) for p in paths]
    else:
        sources = [CsvSource(p, mapping, time_is, steps(definition), interval or market.INTERVAL) for p in paths]
    source = Files(sources)
    meter = Meter(progress) if progress else None
    budget = Budget()
    for each in sources:
        each.meter, each.budget = meter, budget
    if meter:
        meter.start(f"checking {len(sources)} file(s), {sum(s.bytes for s in sources) >> 20} MiB")
    summary = source.scan()
    params = {"format": kind, "source_file": source.sources[0].path.name, "source_sha256": summary.sha256, "columns_map": mapping,
              "time_is": time_is, **instrument_params}
    if kind != klines.FORMAT and interval not in (None, market.INTERVAL):
        params["interval"] = interval  # 1m stays implicit: a dataset imported before --interval existed is still the same input
    if len(paths) > 1:
        params["source_files"] = source.files
    else:
        params["source_sha256"] = source.files[0]["sha256"]
    shown = paths[0] if len(paths) == 1 else Path(f"{len(paths)} files ({source.sources[0].path.name} to {source.sources[-1].path.name})")
    return _converge_import(source.blocks, summary, params, definition, dataset_id, shown, settings, force, check, meter)


def import_catalog(path: Path | str, dataset_id: str, bar_type: str | None, instrument: str = "test:BTCUSDT",
                   settings: quality.Settings | None = None, force: bool = False, check: bool = False,
                   instrument_file: Path | str | None = None) -> Result:
    """`tc data import --catalog`: the bars of BAR_TYPE (None: the instrument's 1m bars) in a NautilusTrader ParquetDataCatalog, each bar file's schema
    and row groups checked from its footer first, then read a row group at a time by NautilusTrader's own decoder
    (opslab/engine/catalog.py), converged into datasets/<id>/ like a CSV import."""
    lean_memory()
    pyarrow_without_pandas()
    definition, instrument_params = _check_options(dataset_id, instrument, "close", instrument_file)
    bar_type = bar_type or market.bar_type(definition["id"])
    parsed = market.parse_bar_type(bar_type)
    if parsed is None or parsed[0] != definition["id"]:
        raise InputError(f"--bar-type {bar_type!r}: the lab's engine runs {definition['id']}'s bars of a Binance interval "
                         f"({market.bar_type(definition['id'])}, {market.bar_type(definition['id'], '1h')}, ...: "
                         f"{', '.join(market.INTERVALS)})")
    path = Path(path)
    source = CatalogSource(path, bar_type, steps(definition))
    summary = source.scan()
    params = {"format": "catalog", "source_file": path.name, "source_sha256": summary.sha256, "columns_map": {},
              "time_is": "close", **instrument_params, "bar_type": bar_type}
    return _converge_import(source.blocks, summary, params, definition, dataset_id, path, settings, force, check)


def _converge_import(blocks: Callable[[], Iterator[Block]], summary: Summary, params: dict[str, Any], definition: dict[str, Any],
                     dataset_id: str, path: Path, settings: quality.Settings | None, force: bool, check: bool,
                     meter: Meter | None = None) -> Result:
    symbol, venue = definition["id"].rsplit(".", 1)
    settings = settings or quality.Settings()
    folder = store.dataset_dir(dataset_id)
    label = f"dataset {dataset_id}"
    exists = fs.root().is_dir() and fs.exists(store.manifest_path(folder))
    if exists:
        current = store.load_manifest(folder)
        same = current.get("params") == params and current.get("kind") == "imported"
        if not same and not force:
            raise InputError(f"{label}: already exists from other input ({current.get('params', {}).get('source_file', current['kind'])}); "
                             "use another --id, or --force to replace it")
        if same and not force:
            store.check_intact(folder)
            return _quality_result(folder, current, settings, check, f"{label} is up to date ({current['rows']} bars)")
    if check:
        verb = "replace" if exists else "create"
        return Result("changed", f"would {verb} {label} from {path} ({summary.rows} bars) and check its quality", [str(folder)],
                      {"dataset_id": dataset_id})
    fs.root_for_write()
    if meter:
        meter.start(f"writing {summary.rows:,} rows", summary.rows)

    scan = quality.Scan(market.seconds(summary.interval), settings)

    def chunks(feed: Any) -> Iterator[bytes]:
        """bars.csv's bytes; each block also goes to the catalog's bar file (FEED) and the quality checks (SCAN) while it
        is in hand, so that neither reads bars.csv again. A block's lines are made on a thread of their own meanwhile:
        pyarrow's kernels release the GIL, so formatting and the other two share the machine's cores (measured
        (200,000 bars, 2 cores): 0.04 s of the pass's 0.15 s)."""
        yield (",".join(COLUMNS) + "\n").encode()
        for block in blocks():
            lines = _Lines(block)
            try:
                columns = block.columns()
                if columns is None:
                    feed.add(None, None)
                    scan.give_up()
                else:
                    feed.add(columns.ts, block.prices)
                    scan.block(columns)
            finally:
                lines.join()  # never left running (an error above ends the import)
            yield lines.result()
        scan.end()

    with fs.locked(folder, label):
        with store.engine_form(folder, definition, summary.interval) as form:
            size, digest = fs.write_stream_atomic(store.bars_path(folder), chunks(form.feed))
            if meter:
                meter.start("writing the engine's catalog")
        engine_form = form.entry
        manifest = {
            "schema_version": SCHEMA_VERSION, "dataset_id": dataset_id, "kind": "imported", "instrument": symbol, "venue": venue,
            "interval": summary.interval, "params": params, "file": store.bars_path(folder).name, "columns": COLUMNS, "rows": summary.rows,
            "first_bar_close": clock.iso_from_ns(summary.first * 1_000_000_000),
            "last_bar_close": clock.iso_from_ns(summary.last * 1_000_000_000),
            "bytes": size, "fingerprint": "sha256:" + digest, **engine_form,
        }
        fs.write_json(store.manifest_path(folder), digests.seal(manifest))
    if meter:
        meter.start("checking quality")
    result = _quality_result(folder, manifest, settings, False, f"imported {label} from {path} ({summary.rows} bars)", scan)
    result.status = "changed" if result.status == "ok" else result.status
    return result


# --- tc data check ------------------------------------------------------------------------------

def check_op(dataset_id: str, settings: quality.Settings, check: bool = False) -> Result:
    """`tc data check DATASET`: run the quality checks, write quality.json (exit 4 when a check fails)."""
    lean_memory()
    pyarrow_without_pandas()
    check_dataset_id(dataset_id)
    fs.root_for_read()
    folder = store.dataset_dir(dataset_id)
    manifest = store.check_intact(folder)
    return _quality_result(folder, manifest, settings, check, f"dataset {dataset_id}")


def _quality_result(folder: Path, manifest: dict[str, Any], settings: quality.Settings, check: bool, prefix: str,
                    scanned: quality.Scan | None = None) -> Result:
    doc = quality.evaluate_blocks(lambda: iter_dataset_blocks(folder), lambda: iter_dataset_rows(folder), manifest["dataset_id"],
                                  manifest["fingerprint"], market.seconds(manifest["interval"]), settings, scanned)
    path = quality_path(folder)
    if check:
        current = fs.read_json(path) if fs.exists(path) else None
        changed = current != doc
    else:
        contracts.ensure_valid("dataset_quality", doc, str(path))
        with fs.locked(folder, f"dataset {manifest['dataset_id']}"):
            changed = fs.write_json(path, doc)
    failed = [f"{c['name']}: {c['count']} found (threshold {c['threshold']})" + (f"; first at line {c['examples'][0]['line']}: {c['examples'][0]['detail']}"
              if c["examples"] else "") for c in doc["checks"] if not c["passed"]]
    what = "passed every check" if doc["passed"] else f"FAILED {len(failed)} check(s): {', '.join(doc['failed_checks'])}"
    status = "failed" if not doc["passed"] else ("changed" if changed else "ok")
    return Result(status, f"{prefix}; quality {what} ({path})", [str(folder)], {"quality": doc, "manifest": manifest},
                  exit_code=EXIT_CHECK if not doc["passed"] else 0, details=failed)
