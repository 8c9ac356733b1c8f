"""Synthetic BTCUSDT 1-minute datasets: deterministic prepare, streamed fingerprint, integrity check.

The generator uses only integer arithmetic on a seeded random.Random, so the same parameters give
the same bytes on every platform. Prices are in cents, volumes in micro-BTC; rows are written as
CSV with the bar's CLOSE time first (Nautilus stamps a bar at its close).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from opslab import clock, contracts, digests, fs, market
from opslab.contracts import SCHEMA_VERSION, errors_for
from opslab.errors import InputError
from opslab.result import Result

GENERATOR = "int-walk-v1"
COLUMNS = ["ts_close", "open", "high", "low", "close", "volume"]
MIN_PRICE_CENTS = 100_000
_SYNTHETIC_ID = re.compile(r"[a-z0-9]+-1m-s[0-9]+-n[0-9]+-[0-9a-f]{10}")  # DatasetParams.dataset_id


class DatasetError(InputError):
    """A dataset is missing or its bytes no longer match its manifest."""


class DatasetOutdated(DatasetError):
    """A dataset written before datasets carried their NautilusTrader catalog and instrument."""


@dataclass(frozen=True)
class DatasetParams:
    """What determines a dataset's bytes."""

    seed: int
    start: str
    bars: int
    start_price: str
    instrument: str = market.SYMBOL
    venue: str = market.VENUE

    @classmethod
    def from_spec(cls, spec_data: dict[str, Any]) -> "DatasetParams":
        ds = spec_data["dataset"]
        return cls(ds["seed"], ds["start"], ds["bars"], ds["start_price"], spec_data["instrument"], spec_data["venue"])

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> "DatasetParams":
        p = manifest["params"]
        return cls(p["seed"], p["start"], p["bars"], p["start_price"], manifest["instrument"], manifest["venue"])

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "start": self.start, "bars": self.bars, "start_price": self.start_price, "generator": GENERATOR}

    @property
    def dataset_id(self) -> str:
        digest = hashlib.sha256(fs.canonical_json([self.instrument, self.venue, self.as_dict()])).hexdigest()[:10]
        return f"{self.instrument.lower()}-1m-s{self.seed}-n{self.bars}-{digest}"


def datasets_dir() -> Path:
    """artifacts/datasets."""
    return fs.root() / "datasets"


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
        ts = clock.iso(start + minute * (i + 1))
        yield (
            f"{ts},{open_ // 100}.{open_ % 100:02d},{high // 100}.{high % 100:02d},"
            f"{low // 100}.{low % 100:02d},{close // 100}.{close % 100:02d},"
            f"{volume // 1_000_000}.{volume % 1_000_000:06d}\n"
        ).encode()
        price = close


def bars_path(folder: Path) -> Path:
    """A dataset's bars file (the registry names it)."""
    return contracts.artifact("dataset_bars").in_folder(folder)


def manifest_path(folder: Path) -> Path:
    """A dataset's manifest (the registry names it)."""
    return contracts.artifact("dataset_manifest").in_folder(folder)


def instrument_path(folder: Path) -> Path:
    """A dataset's instrument definition (the registry names it)."""
    return contracts.artifact("dataset_instrument").in_folder(folder)


def catalog_dir(folder: Path) -> Path:
    """A dataset's ParquetDataCatalog folder (the registry names it: the first three parts of its files' pattern)."""
    return contracts.artifact("dataset_catalog").in_folder(folder, depth=1)


def write_engine_form(folder: Path, definition: dict[str, Any], interval: str = market.INTERVAL) -> dict[str, Any]:
    """Write instrument.json and the catalog (NautilusTrader's writer, from bars.csv just written) of a
    dataset, its bars of INTERVAL (a Binance interval name: the bar type is market.bar_type's); returns the manifest's
    instrument_file and catalog entries. NautilusTrader writes into a
    staging folder that fs installs in place of catalog/ (a rebuild never mixes old and new files)."""
    with engine_form(folder, definition, interval) as form:
        pass
    return form.entry


class EngineForm:
    """What engine_form gives its block: `feed`, the catalog's bar file made from the bars as they are converted
    (engine/catalog.py's Feed); after the block, `entry` (the manifest's instrument_file and catalog)."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed
        self.entry: dict[str, Any] = {}


@contextlib.contextmanager
def engine_form(folder: Path, definition: dict[str, Any], interval: str = market.INTERVAL) -> Iterator[EngineForm]:
    """write_engine_form around a block that writes bars.csv (tc data import) and may give the bars to `form.feed` as it
    goes, so that the catalog need not read bars.csv again. The catalog's staging folder is made first: its sweep of
    the dataset folder's leftover temp files (fs, once per folder) then comes before bars.csv's temp file exists."""
    from opslab.engine import catalog

    bar_type = market.bar_type(definition["id"], interval)
    refused = None
    with fs.install_dir(catalog_dir(folder)) as staging:
        form = EngineForm(catalog.Feed(staging, definition, bar_type))
        try:
            yield form
        except BaseException:
            form.feed.close()  # the block failed: its unfinished bar file goes with the staging folder
            raise
        raw = fs.pretty_json(definition)
        fs.write_atomic(instrument_path(folder), raw)
        try:
            catalog.write(staging, bars_path(folder), definition, bar_type, form.feed)
        except catalog.BarsRefused as exc:
            refused = str(exc)  # the folder stays empty; the quality gate (ohlc_inconsistent) says why no run can use it
    entry: dict[str, Any] = {"folder": catalog_dir(folder).name, "bar_type": bar_type, "files": catalog_files(folder)}
    if refused:
        entry["refused"] = refused
    form.entry = {"instrument_file": {"file": instrument_path(folder).name, "id": definition["id"],
                                      "sha256": "sha256:" + hashlib.sha256(raw).hexdigest()},
                  "catalog": entry}


def catalog_files(folder: Path) -> dict[str, str]:
    """sha256 of every file in a dataset's catalog, by path relative to it (no link followed: LinkRefused)."""
    base = catalog_dir(folder)
    out = {}
    for rel, kind in fs.walk(base):
        if kind == "file":
            out[rel] = "sha256:" + fs.sha256_file(base / rel)
        elif kind != "dir":
            raise fs.LinkRefused(f"{base / rel}: is a {kind}; tc never follows links under the artifacts root")
    return dict(sorted(out.items()))


def measure(folder: Path) -> tuple[int, int]:
    """(bytes, data rows) of a dataset's bars file, streamed."""
    size = lines = 0
    for chunk in fs.iter_chunks(bars_path(folder)):
        size += len(chunk)
        lines += chunk.count(b"\n")
    return size, max(0, lines - 1)


def fingerprint_op(path: Path | str) -> Result:
    """The `tc data fingerprint` operation: sha256 of any file, streamed in 64 KiB chunks."""
    digest, size = fs.sha256_input(path)
    fp = "sha256:" + digest
    return Result("ok", f"{fp}  {path}", data={"path": str(path), "fingerprint": fp, "bytes": size})


def load_manifest(folder: Path) -> dict[str, Any]:
    """The dataset manifest, validated; DatasetError when missing or invalid."""
    path = manifest_path(folder)
    # The manifest cannot say which kind the dataset is: a synthetic one's id is derived from its parameters.
    either = ("`tc data prepare --spec SPEC --force`" if _SYNTHETIC_ID.fullmatch(folder.name) else
              "`tc data prepare --spec SPEC --force` (a synthetic dataset) or `tc data import ... --force` (an imported one)")
    try:
        data = fs.read_json(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no dataset manifest; run {either}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc.strerror}); run {either}") from None
    except InputError as exc:
        raise DatasetError(f"{exc}; run {either}") from None
    if isinstance(data, dict) and "fingerprint" in data and "catalog" not in data:
        raise DatasetOutdated(f"{path}: written by an older tc (no NautilusTrader catalog); `tc data prepare --spec SPEC` rebuilds a "
                              "synthetic dataset, `tc data import ... --force` an imported one")
    problems = errors_for("dataset_manifest", data, str(path)) + digests.seal_problems(data, str(path))
    if problems:
        raise DatasetError(f"{problems[0]}; run {rewrite_hint(data) if isinstance(data, dict) else either}")
    return data


def rewrite_hint(manifest: dict[str, Any]) -> str:
    """The command that writes a dataset of MANIFEST's kind again."""
    if manifest.get("kind") == "imported":
        params = manifest.get("params", {})
        source = "--catalog FOLDER" if params.get("format") == "catalog" else "--csv FILE"
        return f"`tc data import {source} --id {manifest.get('dataset_id', 'ID')} --force` (from {params.get('source_file', 'its source')})"
    return "`tc data prepare --spec SPEC --force`"


def check_intact(folder: Path) -> dict[str, Any]:
    """The manifest of an intact dataset; DatasetError when the bytes do not match it."""
    manifest = load_manifest(folder)
    bars = bars_path(folder)
    hint = rewrite_hint(manifest)
    try:
        actual = "sha256:" + fs.sha256_file(bars)
    except FileNotFoundError:
        raise DatasetError(f"{bars}: missing; run {hint}") from None
    if actual != manifest["fingerprint"]:
        raise DatasetError(
            f"{bars}: fingerprint {actual} does not match its manifest ({manifest['fingerprint']}); "
            f"the file was changed: inspect it, then run {hint}"
        )
    redo = f"inspect it, then write the dataset again: {hint}"
    instrument = instrument_path(folder)
    try:
        actual = "sha256:" + fs.sha256_file(instrument)
    except FileNotFoundError:
        raise DatasetError(f"{instrument}: missing; {redo}") from None
    if actual != manifest["instrument_file"]["sha256"]:
        raise DatasetError(f"{instrument}: sha256 does not match its manifest (changed); {redo}")
    # The engine reads the catalog, not bars.csv: its files must be exactly the ones written with the fingerprinted bytes.
    try:
        files = catalog_files(folder)
    except InputError as exc:
        raise DatasetError(f"{exc}; {redo}") from None
    listed = manifest["catalog"]["files"]
    for rel in sorted(set(files) | set(listed)):
        if files.get(rel) != listed.get(rel):
            what = "missing" if rel not in files else "not in the manifest" if rel not in listed else "changed (sha256 differs)"
            raise DatasetError(f"{catalog_dir(folder) / rel}: {what}; {redo}")
    return manifest


def _batches(params: DatasetParams) -> Iterator[bytes]:
    batch: list[bytes] = []
    for line in generate_rows(params):
        batch.append(line)
        if len(batch) >= 4096:
            yield b"".join(batch)
            batch.clear()
    yield b"".join(batch)


def _write(params: DatasetParams, folder: Path) -> dict[str, Any]:
    from opslab.engine import instruments

    size, digest = fs.write_stream_atomic(bars_path(folder), _batches(params))
    engine_form = write_engine_form(folder, instruments.built_in(f"test:{params.instrument}"))
    start = clock.parse_iso(params.start)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "dataset_id": params.dataset_id,
        "kind": "synthetic",
        "instrument": params.instrument,
        "venue": params.venue,
        "interval": market.INTERVAL,
        "params": params.as_dict(),
        "file": bars_path(folder).name,
        "columns": COLUMNS,
        "rows": params.bars,
        "first_bar_close": clock.iso(start + timedelta(minutes=1)),
        "last_bar_close": clock.iso(start + timedelta(minutes=params.bars)),
        "bytes": size,
        "fingerprint": "sha256:" + digest,
        **engine_form,
    }
    fs.write_json(manifest_path(folder), digests.seal(manifest))
    return manifest


def prepare(params: DatasetParams, force: bool = False, check: bool = False) -> Result:
    """Converge the dataset for PARAMS: ok when present and intact, changed when (re)written."""
    folder = dataset_dir(params.dataset_id)
    rel = str(folder)
    if check and not fs.root().exists():
        exists = False
    else:
        (fs.root_for_read if check else fs.root_for_write)()
        exists = fs.exists(manifest_path(folder))
    outdated = False
    if exists and not force:
        try:
            manifest = check_intact(folder)
            return Result("ok", f"dataset {params.dataset_id} is intact ({manifest['rows']} bars)", [rel], {"manifest": manifest})
        except DatasetOutdated:
            outdated = True  # converges like a missing dataset: the same parameters give the same bars
    if check:
        verb = "upgrade" if outdated else "rebuild" if exists else "create"
        return Result("changed", f"would {verb} dataset {params.dataset_id} ({params.bars} bars)", [rel], {"dataset_id": params.dataset_id})
    with fs.locked(folder, f"dataset {params.dataset_id}"):
        manifest = _write(params, folder)
    return Result("changed", f"prepared dataset {params.dataset_id} ({manifest['rows']} bars, {manifest['fingerprint'][:19]}…)", [rel], {"manifest": manifest})


def last_bar_age_seconds(manifest: dict[str, Any], now: datetime | None = None) -> int:
    """Seconds since the dataset's last bar closed, by the lab clock."""
    now = now or clock.now()
    last = clock.parse_iso(manifest["last_bar_close"]).replace(tzinfo=timezone.utc)
    return int((now - last).total_seconds())
