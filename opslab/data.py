"""Synthetic BTCUSDT 1-minute dataset: deterministic prepare, streamed fingerprint, integrity check.

The generator uses only integer arithmetic on a seeded random.Random, so the same parameters give
the same bytes on every platform. Prices are in cents, volumes in micro-BTC; rows are written as
CSV with the bar's CLOSE time first (Nautilus stamps a bar at its close).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from opslab import artifacts, clock
from opslab.contracts import SCHEMA_VERSION, errors_for
from opslab.errors import InputError
from opslab.result import Result

GENERATOR = "int-walk-v1"
COLUMNS = ["ts_close", "open", "high", "low", "close", "volume"]
BARS_FILE = "bars.csv"
MANIFEST = "manifest.json"
MIN_PRICE_CENTS = 100_000


class DatasetError(InputError):
    """A dataset is missing or its bytes no longer match its manifest."""


@dataclass(frozen=True)
class DatasetParams:
    """What determines a dataset's bytes."""

    seed: int
    start: str
    bars: int
    start_price: str
    instrument: str = "BTCUSDT"
    venue: str = "BINANCE"

    @classmethod
    def from_spec(cls, spec_data: dict[str, Any]) -> "DatasetParams":
        ds = spec_data["dataset"]
        return cls(ds["seed"], ds["start"], ds["bars"], ds["start_price"], spec_data["instrument"], spec_data["venue"])

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "start": self.start, "bars": self.bars, "start_price": self.start_price, "generator": GENERATOR}

    @property
    def dataset_id(self) -> str:
        digest = hashlib.sha256(artifacts.canonical_json([self.instrument, self.venue, self.as_dict()])).hexdigest()[:10]
        return f"{self.instrument.lower()}-1m-s{self.seed}-n{self.bars}-{digest}"


def datasets_dir() -> Path:
    """artifacts/datasets."""
    return artifacts.root() / "datasets"


def dataset_dir(dataset_id: str) -> Path:
    """The folder of one dataset."""
    return datasets_dir() / dataset_id


def generate_rows(params: DatasetParams) -> Iterator[bytes]:
    """CSV lines (header first) of the synthetic series, deterministic for PARAMS."""
    rng = random.Random(params.seed)
    price = int(Decimal(params.start_price) * 100)
    start = clock.parse_iso(params.start)
    minute = timedelta(minutes=1)
    yield (",".join(COLUMNS) + "\n").encode()
    for i in range(params.bars):
        open_ = price
        step = rng.randint(-120, 120)  # tenths of a basis point
        close = max(MIN_PRICE_CENTS, open_ + open_ * step // 100_000)
        wick = max(1, open_ // 4000)
        high = max(open_, close) + rng.randint(0, wick)
        low = max(1, min(open_, close) - rng.randint(0, wick))
        volume = rng.randint(10_000, 5_000_000)  # micro-BTC: 0.01 .. 5 BTC
        ts = (start + minute * (i + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        yield (
            f"{ts},{open_ // 100}.{open_ % 100:02d},{high // 100}.{high % 100:02d},"
            f"{low // 100}.{low % 100:02d},{close // 100}.{close % 100:02d},"
            f"{volume // 1_000_000}.{volume % 1_000_000:06d}\n"
        ).encode()
        price = close


def fingerprint(path: Path | str) -> str:
    """sha256:<hex> of a file, streamed in 64 KiB chunks (never read whole into memory)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        return "sha256:" + artifacts.sha256_file(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def fingerprint_op(path: Path | str) -> Result:
    """The `tc data fingerprint` operation."""
    fp = fingerprint(path)
    return Result("ok", f"{fp}  {path}", data={"path": str(path), "fingerprint": fp, "bytes": Path(path).stat().st_size})


def load_manifest(folder: Path) -> dict[str, Any]:
    """The dataset manifest, validated; DatasetError when missing or invalid."""
    path = folder / MANIFEST
    try:
        data = artifacts.read_json(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no dataset manifest; run `tc data prepare --spec SPEC`") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc}); run `tc data prepare --spec SPEC --force`") from None
    problems = errors_for("dataset_manifest", data, str(path))
    if problems:
        raise DatasetError(problems[0] + "; run `tc data prepare --spec SPEC --force`")
    return data


def check_intact(folder: Path) -> dict[str, Any]:
    """The manifest of an intact dataset; DatasetError when the bytes do not match it."""
    manifest = load_manifest(folder)
    bars = folder / BARS_FILE
    if not bars.is_file():
        raise DatasetError(f"{bars}: missing; run `tc data prepare --spec SPEC --force`")
    actual = fingerprint(bars)
    if actual != manifest["fingerprint"]:
        raise DatasetError(
            f"{bars}: fingerprint {actual} does not match its manifest ({manifest['fingerprint']}); "
            "the file was changed: inspect it, then run `tc data prepare --spec SPEC --force`"
        )
    return manifest


def _write(params: DatasetParams, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{BARS_FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            batch: list[bytes] = []
            for line in generate_rows(params):
                batch.append(line)
                if len(batch) >= 4096:
                    chunk = b"".join(batch)
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    batch.clear()
            chunk = b"".join(batch)
            fh.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / BARS_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    start = clock.parse_iso(params.start)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "dataset_id": params.dataset_id,
        "kind": "synthetic",
        "instrument": params.instrument,
        "venue": params.venue,
        "interval": "1m",
        "params": params.as_dict(),
        "file": BARS_FILE,
        "columns": COLUMNS,
        "rows": params.bars,
        "first_bar_close": clock.iso(start + timedelta(minutes=1)),
        "last_bar_close": clock.iso(start + timedelta(minutes=params.bars)),
        "bytes": size,
        "fingerprint": "sha256:" + digest.hexdigest(),
    }
    artifacts.write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def prepare(params: DatasetParams, force: bool = False, check: bool = False) -> Result:
    """Converge the dataset for PARAMS: ok when present and intact, changed when (re)written."""
    artifacts.ensure_writable_root()
    folder = dataset_dir(params.dataset_id)
    rel = str(folder)
    exists = (folder / MANIFEST).exists()
    if exists and not force:
        manifest = check_intact(folder)
        return Result("ok", f"dataset {params.dataset_id} is intact ({manifest['rows']} bars)", [rel], {"manifest": manifest})
    if check:
        verb = "rebuild" if exists else "create"
        return Result("changed", f"would {verb} dataset {params.dataset_id} ({params.bars} bars)", [rel], {"dataset_id": params.dataset_id})
    with artifacts.locked(folder, f"dataset {params.dataset_id}"):
        manifest = _write(params, folder)
    return Result("changed", f"prepared dataset {params.dataset_id} ({manifest['rows']} bars, {manifest['fingerprint'][:19]}…)", [rel], {"manifest": manifest})


def last_bar_age_seconds(manifest: dict[str, Any], now: datetime | None = None) -> int:
    """Seconds since the dataset's last bar closed, by the lab clock."""
    now = now or clock.now()
    last = clock.parse_iso(manifest["last_bar_close"]).replace(tzinfo=timezone.utc)
    return int((now - last).total_seconds())
