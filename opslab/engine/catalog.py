"""Bars from a user's NautilusTrader ParquetDataCatalog (`tc data import --catalog`), read by the
catalog's own reader and handed back as plain rows for the lab's canonical dataset form."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from opslab import quality
from opslab.errors import InputError

MAX_CATALOG_BYTES = 1 << 30  # the bar files read for one import


def _bar_files(path: Path, bar_type: str) -> list[Path]:
    folder = path / "data" / "bar" / bar_type
    if not folder.is_dir():
        raise InputError(f"{path}: no bars of {bar_type} in this catalog (expected the folder {folder})")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
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


def read_rows(path: Path | str, bar_type: str) -> list[quality.Row]:
    """The bars of BAR_TYPE in the catalog at PATH, in the catalog's order; InputError when unreadable."""
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

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
    return [quality.Row(i + 2, bar.ts_event // 1_000_000_000, bar.open.as_decimal(), bar.high.as_decimal(), bar.low.as_decimal(),
                        bar.close.as_decimal(), bar.volume.as_decimal()) for i, bar in enumerate(bars)]
