"""Datasets from the user: `tc data import` (CSV), `tc data check` (quality), the run's quality gate.

An imported dataset lives beside the synthetic ones (datasets/<id>/) in the same registered layout:
bars.csv in the lab's canonical form (close time first, prices at the instrument's precision; the
fingerprint covers these bytes), manifest.json (kind "imported", where the rows came from) and
quality.json (the checks of opslab/datasets/quality.py). The rows are kept as given (order, duplicates and
all), so the quality artifact describes the data the engine would see.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterator

from opslab import clock, contracts, digests, fs, market
from opslab.datasets import store, instruments, quality
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result

COLUMNS = store.COLUMNS  # ts_close, open, high, low, close, volume: the documented input columns too
MAX_CSV_BYTES = 256 << 20
INTERVAL_SECONDS = 60
INSTRUMENTS = ("test:BTCUSDT",)  # built-in instrument definitions (opslab/engine/instruments.py)
DATASET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
EXIT_CHECK = EXIT_CODES["check"]


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

def parse_time(text: str, where: str) -> int:
    """Epoch seconds of an RFC 3339 / ISO 8601 time (no zone = UTC) or an epoch number in s, ms, us or ns."""
    text = text.strip()
    if re.fullmatch(r"[0-9]{1,20}", text):
        n = int(text)
        for scale in (10**9, 10**6, 10**3):  # by magnitude: ns, us, ms (a plausible year for each)
            if n >= scale * 10**8 * 10:
                return n // scale
        return n
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: {text[:40]!r} is not a time (expected RFC 3339 such as 2024-01-01T00:01:00Z, or epoch s/ms/us/ns)") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int(ts.timestamp())


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{where}: {text[:40]!r} is not a number") from None
    if not value.is_finite():
        raise InputError(f"{where}: {text[:40]!r} is not a finite number")
    return value


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


def read_csv(raw: bytes, label: str, mapping: dict[str, str], time_is: str,
             step: tuple[Decimal, Decimal] = (Decimal("0.01"), Decimal("0.000001"))) -> list[quality.Row]:
    """The rows of a user's CSV: header names mapped onto the canonical columns; InputError names file, line, column."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not valid UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise InputError(f"{label}: is empty, expected a header line with {', '.join(COLUMNS)}")
    header = [h.strip() for h in header]
    index = {}
    for canon in COLUMNS:
        name = mapping.get(canon, canon)
        if name not in header:
            raise InputError(f"{label}: line 1: no column {name!r} (for {canon}); the header has {', '.join(header)[:200]}; "
                             "use --map COLUMN=THEIR_NAME")
        index[canon] = header.index(name)
    shift = INTERVAL_SECONDS if time_is == "open" else 0
    price_step, size_step = step
    rows = []
    for line_no, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) < len(header):
            raise InputError(f"{label}: line {line_no}: {len(fields)} fields, the header has {len(header)}")
        where = f"{label}: line {line_no}"
        values = {c: fields[i] for c, i in index.items()}
        ts = parse_time(values["ts_close"], f"{where}: column {mapping.get('ts_close', 'ts_close')}") + shift
        prices = [_decimal(values[c], f"{where}: column {mapping.get(c, c)}").quantize(price_step) for c in ("open", "high", "low", "close")]
        volume = _decimal(values["volume"], f"{where}: column {mapping.get('volume', 'volume')}").quantize(size_step)
        rows.append(quality.Row(line_no, ts, *prices, volume))
    if not rows:
        raise InputError(f"{label}: has a header but no rows")
    return rows


def _canonical_lines(rows: list[quality.Row], step: tuple[Decimal, Decimal]) -> Iterator[bytes]:
    yield (",".join(COLUMNS) + "\n").encode()
    batch = []
    price_step, size_step = step
    for r in rows:
        ts = clock.iso_from_ns(r.ts * 1_000_000_000)
        o, h, lo, c = (x.quantize(price_step) for x in (r.open, r.high, r.low, r.close))
        batch.append(f"{ts},{o},{h},{lo},{c},{r.volume.quantize(size_step)}\n".encode())
        if len(batch) >= 4096:
            yield b"".join(batch)
            batch.clear()
    yield b"".join(batch)


def read_dataset_rows(folder: Path) -> list[quality.Row]:
    """The rows of a dataset's canonical bars.csv (synthetic or imported), streamed."""
    rows: list[quality.Row] = []
    tail = b""
    line_no = 0
    for chunk in fs.iter_chunks(store.bars_path(folder)):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            line_no += 1
            if line_no == 1 or not line:
                continue
            ts, o, h, lo, c, v = line.decode().split(",")
            rows.append(quality.Row(line_no, int(clock.epoch_seconds(ts)), Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v)))
    return rows


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


def import_csv(path: Path | str, dataset_id: str, mapping: dict[str, str] | None = None, time_is: str = "close",
               instrument: str = "test:BTCUSDT", settings: quality.Settings | None = None,
               force: bool = False, check: bool = False, instrument_file: Path | str | None = None) -> Result:
    """`tc data import --csv`: converge datasets/<id>/ to the CSV's rows, then check their quality (exit 4 when it fails)."""
    definition, instrument_params = _check_options(dataset_id, instrument, time_is, instrument_file)
    mapping = mapping or {}
    path = Path(path)
    raw = fs.read_input(path, "CSV", limit=MAX_CSV_BYTES)
    rows = read_csv(raw, str(path), mapping, time_is, steps(definition))
    params = {"format": "csv", "source_file": path.name, "source_sha256": hashlib.sha256(raw).hexdigest(), "columns_map": mapping,
              "time_is": time_is, **instrument_params}
    return _converge_import(rows, params, definition, dataset_id, path, settings, force, check)


def import_catalog(path: Path | str, dataset_id: str, bar_type: str, instrument: str = "test:BTCUSDT",
                   settings: quality.Settings | None = None, force: bool = False, check: bool = False,
                   instrument_file: Path | str | None = None) -> Result:
    """`tc data import --catalog`: the bars of BAR_TYPE in a NautilusTrader ParquetDataCatalog, read by its
    own reader (opslab/engine/catalog.py), converged into datasets/<id>/ like a CSV import."""
    from opslab.engine import catalog

    definition, instrument_params = _check_options(dataset_id, instrument, "close", instrument_file)
    if bar_type != market.BAR_TYPE:
        raise InputError(f"--bar-type {bar_type!r}: the lab's engine runs {market.BAR_TYPE} only")
    path = Path(path)
    rows = [quality.Row(i + 2, *bar) for i, bar in enumerate(catalog.read_rows(path, bar_type))]
    params = {"format": "catalog", "source_file": path.name, "source_sha256": catalog.digest(path, bar_type), "columns_map": {},
              "time_is": "close", **instrument_params, "bar_type": bar_type}
    return _converge_import(rows, params, definition, dataset_id, path, settings, force, check)


def _converge_import(rows: list[quality.Row], params: dict[str, Any], definition: dict[str, Any], dataset_id: str, path: Path,
                     settings: quality.Settings | None, force: bool, check: bool) -> Result:
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
        return Result("changed", f"would {verb} {label} from {path} ({len(rows)} bars) and check its quality", [str(folder)], {"dataset_id": dataset_id})
    fs.root_for_write()
    with fs.locked(folder, label):
        size, digest = fs.write_stream_atomic(store.bars_path(folder), _canonical_lines(rows, steps(definition)))
        engine_form = store.write_engine_form(folder, definition)
        manifest = {
            "schema_version": SCHEMA_VERSION, "dataset_id": dataset_id, "kind": "imported", "instrument": symbol, "venue": venue,
            "interval": "1m", "params": params, "file": store.bars_path(folder).name, "columns": COLUMNS, "rows": len(rows),
            "first_bar_close": clock.iso_from_ns(min(r.ts for r in rows) * 1_000_000_000),
            "last_bar_close": clock.iso_from_ns(max(r.ts for r in rows) * 1_000_000_000),
            "bytes": size, "fingerprint": "sha256:" + digest, **engine_form,
        }
        fs.write_json(store.manifest_path(folder), digests.seal(manifest))
    result = _quality_result(folder, manifest, settings, False, f"imported {label} from {path} ({len(rows)} bars)", rows)
    result.status = "changed" if result.status == "ok" else result.status
    return result


# --- tc data check ------------------------------------------------------------------------------

def check_op(dataset_id: str, settings: quality.Settings, check: bool = False) -> Result:
    """`tc data check DATASET`: run the quality checks, write quality.json (exit 4 when a check fails)."""
    check_dataset_id(dataset_id)
    fs.root_for_read()
    folder = store.dataset_dir(dataset_id)
    manifest = store.check_intact(folder)
    return _quality_result(folder, manifest, settings, check, f"dataset {dataset_id}")


def _quality_result(folder: Path, manifest: dict[str, Any], settings: quality.Settings, check: bool, prefix: str,
                    rows: list[quality.Row] | None = None) -> Result:
    rows = rows if rows is not None else read_dataset_rows(folder)
    doc = quality.evaluate(rows, manifest["dataset_id"], manifest["fingerprint"], INTERVAL_SECONDS, settings)
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
