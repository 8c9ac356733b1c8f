"""Binance's public kline files (data.binance.vision) as they are: the zip, its one CSV, their times.

A kline file is one day (or month) of one symbol and interval: a zip holding one CSV of 12 columns
(NAMES), with no header (spot) or Binance's own header (futures). open_time and close_time are epoch
milliseconds (13 digits), or microseconds (16 digits) in spot files from 2025-01-01. close_time is the
bar's last millisecond (12:00:59.999 for the 12:00 1m bar), so the lab's ts_close (the bar's end) is
close_time + 1 unit, checked on every row to be open_time + the interval. The interval is the first row's
(close_time + 1 unit - open_time): any of market.INTERVALS (1s to 1w), the dataset's bar type then.

The zip is bounded before a byte is inflated: its size, its central directory (read from the end
record, so a directory of a million entries is never parsed), one member, the member's declared size;
the member is then streamed (zipfile stops at the declared size and checks the CRC at its end).
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opslab import fs, market
from opslab.errors import InputError

FORMAT = "binance-klines"
NAMES = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
         "taker_buy_volume", "taker_buy_quote_volume", "ignore")
HEADER = ",".join(NAMES).encode()
UNITS = {13: ("ms", 1000), 16: ("us", 1_000_000)}  # digits of an epoch time -> its unit
MAX_DIRECTORY = 64 << 10  # a one-member archive's central directory is under 100 bytes
_EOCD = b"PK\x05\x06"
_BARE = re.compile(rb"([0-9]{13}|[0-9]{16})(,-?[0-9]+(\.[0-9]+)?){11}\r?")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError)


def sniff(first: bytes) -> str | None:
    """What a file's first bytes say: 'zip', 'header' (Binance's header line), 'bare' (a kline row, no header) or None."""
    if first.startswith(b"PK\x03\x04"):
        return "zip"
    line = first.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
    if line == HEADER:
        return "header"
    return "bare" if _BARE.fullmatch(line) else None


def interval_name(length: int, per_second: int) -> str:
    """Binance's name of a bar length (in time units): 1m, 1h, 1d; a month is 1M."""
    if length % per_second:
        return f"{length / per_second:g}s"
    seconds = length // per_second
    if 28 * 86400 <= seconds <= 31 * 86400:
        return "1M"
    return market.interval_of_seconds(seconds) or f"{seconds}s"


def check_options(mapping: dict[str, str], time_is: str) -> None:
    """InputError unless --map / --time-is say what the kline reader does anyway (the documented recipes keep working)."""
    for canon, theirs in mapping.items():
        fits = theirs == canon if canon != "ts_close" else (theirs, time_is) in (("close_time", "close"), ("open_time", "open"))
        if not fits:
            raise InputError(f"--map {canon}={theirs} (--time-is {time_is}): a Binance kline file has fixed columns, and tc stamps "
                             "each bar at close_time + 1 ms (checked against open_time + the file's interval); drop --map, or read the "
                             "file as a plain CSV with --format csv")
    if time_is == "open" and "ts_close" not in mapping:
        raise InputError("--time-is open: a Binance kline file has both times (tc reads open_time and close_time); drop --time-is")


_NAME = re.compile(r"([A-Z0-9]{2,20})-(1s|[0-9]{1,2}[mhdwM])-[0-9]{4}-[0-9]{2}(-[0-9]{2})?\.(csv|zip)")


def check_symbol(path: Path, symbol: str, built_in: bool) -> None:
    """InputError when PATH is named as Binance names its files (ETHUSDT-1h-2024-03-01.zip) for another symbol than SYMBOL,
    the instrument's: another instrument's bars would be imported as this one's."""
    named = _NAME.fullmatch(path.name)
    if named and named.group(1) != symbol:
        hint = (f"--instrument-file fixtures/instruments/{named.group(1).lower()}-binance-spot.json (or your own definition)"
                if built_in else f"an instrument file of {named.group(1)}")
        raise InputError(f"{path}: Binance's file of {named.group(1)}, the instrument is {symbol}; give {hint}")


class Member:
    """The one CSV inside a Binance kline zip, streamed (read(n)); the archive's sha256 is `digest`."""

    def __init__(self, path: Path, limit: int) -> None:
        self.label = str(path)
        self.fh = fs.open_input(path, "CSV or ZIP")
        try:
            self._open(limit)
        except BaseException:
            self.fh.close()
            raise

    def _refuse(self, why: str) -> InputError:
        return InputError(f"{self.label}: {why}; nothing was inflated")

    def _open(self, limit: int) -> None:
        size = os.fstat(self.fh.fileno()).st_size
        if size > limit:
            raise self._refuse(f"a ZIP archive larger than {limit} bytes (the limit for this file)")
        digest = hashlib.sha256()
        while chunk := self.fh.read(1 << 20):
            digest.update(chunk)
        self.digest = digest.hexdigest()
        self.fh.seek(max(0, size - 22 - 0xFFFF))
        tail = self.fh.read()
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) < at + 22:
            raise self._refuse("a damaged ZIP archive (no end-of-archive record)")
        entries = int.from_bytes(tail[at + 10:at + 12], "little")
        directory = int.from_bytes(tail[at + 12:at + 16], "little")
        if entries != 1:
            raise self._refuse(f"a ZIP archive of {entries} members, expected one (a Binance kline zip holds one CSV)")
        if directory > MAX_DIRECTORY:
            raise self._refuse(f"a ZIP archive whose directory is {directory} bytes (more than {MAX_DIRECTORY} for one member)")
        self.fh.seek(0)
        try:
            archive = zipfile.ZipFile(self.fh)
            members = archive.infolist()
        except _ZIP_ERRORS as exc:
            raise self._refuse(f"a damaged ZIP archive ({str(exc)[:120]})") from None
        if len(members) != 1:
            raise self._refuse(f"a ZIP archive of {len(members)} members, expected one (a Binance kline zip holds one CSV)")
        info = members[0]
        self.label = f"{self.label}:{info.filename[:120]}"
        if info.is_dir() or info.flag_bits & 0x1:
            raise self._refuse("a directory or an encrypted member, expected a CSV")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self._refuse(f"compressed with method {info.compress_type}, expected stored or deflated")
        if info.file_size > limit:
            raise self._refuse(f"inflates to {info.file_size} bytes, more than {limit} (the limit for a CSV)")
        self.size = info.file_size  # what it inflates to (an import's progress counts these bytes)
        try:
            self.member = archive.open(info)
        except _ZIP_ERRORS as exc:
            raise self._refuse(f"a damaged ZIP archive ({str(exc)[:120]})") from None

    def read(self, n: int) -> bytes:
        """Up to N inflated bytes; InputError when the archive is damaged (a bad CRC, a truncated stream)."""
        try:
            return self.member.read(n)
        except _ZIP_ERRORS as exc:
            raise InputError(f"{self.label}: a damaged ZIP archive ({str(exc)[:120]})") from None

    def fileno(self) -> int:
        return self.fh.fileno()

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> Member:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Clock:
    """One file's kline times -> the bars' close times in epoch seconds; the unit and bar length are the first row's,
    its Binance interval (1m, 1h, ...) is `interval`."""

    def __init__(self, label: str, end: int) -> None:
        self.label, self.end = label, end
        self.digits: int | None = None
        self.length = 0
        self.interval = ""

    def _at(self, line: int, column: str, why: str) -> InputError:
        return InputError(f"{self.label}: line {line}: column {column}: {why}")

    def seconds(self, opens: pa.Array, closes: pa.Array, line: int) -> pa.Array:
        """Close times (close_time + 1 unit, = open_time + the interval) of a block starting on LINE; InputError names the row."""
        if self.digits is None:
            first = opens[0].as_py()
            self.digits = len(first) if first.isdigit() and len(first) in UNITS else 0
        for column, values in (("open_time", opens), ("close_time", closes)):
            ok = pc.match_substring_regex(values, f"^[0-9]{{{self.digits}}}$") if self.digits else pa.array([False] * len(values))
            if not pc.all(ok).as_py():
                i = pc.index(ok, False).as_py()
                raise self._at(line + i, column, self._unit_problem(values[i].as_py()))
        name, per_second = UNITS[self.digits]
        opens, closes = pc.cast(opens, pa.int64()), pc.cast(closes, pa.int64())
        ends = pc.add(closes, 1)
        lengths = pc.subtract(ends, opens)
        if not self.length:
            self.length = lengths[0].as_py()
            if self.length <= 0:
                raise self._at(line, "close_time", f"{closes[0]} is before open_time {opens[0]}")
            interval = market.interval_of_seconds(self.length // per_second) if self.length % per_second == 0 else None
            if interval is None:
                raise InputError(f"{self.label}: {interval_name(self.length, per_second)} klines (line {line}: close_time + 1 {name} "
                                 f"- open_time = {self.length} {name}): the lab runs Binance's fixed intervals "
                                 f"{', '.join(market.INTERVALS)}; import those files (data.binance.vision .../klines/SYMBOL/1h/...)")
            self.interval = interval
        same = pc.equal(lengths, self.length)
        if not pc.all(same).as_py():
            i = pc.index(same, False).as_py()
            raise self._at(line + i, "close_time", f"{closes[i]} is not open_time {opens[i]} + {self.interval} - 1 {name} "
                                                   "(every bar of a kline file is one interval long)")
        seconds = pc.divide(ends, per_second)
        whole = pc.equal(pc.multiply(seconds, per_second), ends)
        if not pc.all(whole).as_py():
            i = pc.index(whole, False).as_py()
            raise self._at(line + i, "open_time", f"{opens[i]} is not on a whole second")
        inside = pc.less(seconds, self.end)
        if not pc.all(inside).as_py():
            i = pc.index(inside, False).as_py()
            raise self._at(line + i, "close_time", f"{closes[i]} is after 2262-04-10T23:59:59Z (the last time tc takes)")
        return seconds

    def _unit_problem(self, text: str) -> str:
        unit = UNITS.get(len(text)) if text.isdigit() else None
        if unit and self.digits:
            first = UNITS[self.digits][0]
            return (f"{text} is in {unit[0]} ({len(text)} digits) where the file's first row is in {first} ({self.digits} digits): "
                    "one file must not mix units (Binance's spot files switched to microseconds on 2025-01-01)")
        return f"{text[:40]!r} is not an epoch time in milliseconds (13 digits) or microseconds (16 digits)"
