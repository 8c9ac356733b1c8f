"""Append-only, hash-chained event logs (a run's journal.jsonl; the kill switch history).

Each line is one JSON event holding `prev` (the hash of the line before; 64 zeros for the first)
and `hash` (sha256 over the canonical JSON of the event without `hash`). Lines are appended one at
a time with fsync through the safe file layer, so a crash loses at most the line being written (the
next append cuts it), no link is followed, and `verify` finds edits, truncation, reordering and
torn lines. An append reads only the log's last line, so appending costs the same at any length.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from opslab import clock, digests, fs
from opslab.contracts import SCHEMA_VERSION, iter_errors
from opslab.errors import InputError

GENESIS = "0" * 64


def event_hash(event: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of EVENT without its `hash` field."""
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(fs.canonical_json(body)).hexdigest()


def read(path: Path) -> list[dict[str, Any]]:
    """The complete, well-formed events of a log, in order (a missing log is empty). Does not verify:
    reading stops at the first line that is not a JSON object (`verify` names it)."""
    try:
        raw = fs.read_bytes(path)
    except FileNotFoundError:
        return []
    events = []
    for line in raw.split(b"\n")[:-1]:
        try:
            rec = fs.parse_json(line, str(path))
        except InputError:
            break
        if not isinstance(rec, dict) or not isinstance(rec.get("data", {}), dict):
            break
        events.append(rec)
    return events


def _last(path: Path) -> dict[str, Any] | None:
    line = fs.last_line(path)
    if line is None:
        return None
    rec = fs.parse_json(line, str(path))
    if not isinstance(rec, dict) or not isinstance(rec.get("seq"), int) or not isinstance(rec.get("hash"), str):
        raise InputError(f"{path}: its last line is not an event; run `tc artifacts verify --all`")
    return rec


def append(path: Path, run_id: str, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append one run journal event (fsync'd) chained to the last one, and return it."""
    return append_record(path, {"event": event, "run_id": run_id, "data": data or {}})


def append_record(path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Append FIELDS plus schema_version, seq, ts, prev and hash as one chained line (fsync'd).

    Callers hold the lock of whatever the log belongs to, so seq and prev cannot race.
    """
    path = Path(path)
    fs.append_line(path, b"")  # cuts a torn tail (a crash mid-write) before the last line is read
    last = _last(path)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "seq": (last["seq"] + 1) if last else 1,
        "ts": clock.now_iso(),
        **fields,
        "prev": last["hash"] if last else GENESIS,
    }
    record["hash"] = event_hash(record)
    fs.append_line(path, fs.canonical_json(record) + b"\n", repair=False)
    fs.bump_generation(path)
    return record


def has_event(path: Path, event: str, **match: Any) -> bool:
    """True when the log already holds EVENT whose data contains MATCH (for idempotent appends)."""
    return any(rec.get("event") == event and all(rec["data"].get(k) == v for k, v in match.items()) for rec in read(path))


def verify(path: Path, schema: str, label: str) -> list[str]:
    """Problems found in a log: schema violations, broken chain, gaps, torn or edited lines."""
    try:
        raw = fs.read_bytes(path)
    except (OSError, InputError) as exc:
        return [f"{label}: cannot read ({getattr(exc, 'strerror', None) or exc})"]
    return verify_bytes(raw, schema, label)


def verify_bytes(raw: bytes, schema: str, label: str) -> list[str]:
    """verify() over a log's bytes."""
    problems: list[str] = []
    if raw and not raw.endswith(b"\n"):
        problems.append(f"{label}: last line is torn (no trailing newline)")
    prev = GENESIS
    for number, line in enumerate(raw.split(b"\n")[:-1] if raw.endswith(b"\n") else raw.split(b"\n"), start=1):
        try:
            rec = fs.parse_json(line, f"{label}:{number}")
        except InputError as exc:
            problems.append(str(exc))
            return problems
        problems += [f"{label}:{number}: {ptr}: {msg}" for ptr, msg in iter_errors(schema, rec)]
        if not isinstance(rec, dict):
            return problems
        if rec.get("seq") != number:
            problems.append(f"{label}:{number}: seq {rec.get('seq')!r}, expected {number}")
        if rec.get("prev") != prev:
            problems.append(f"{label}:{number}: chain broken (prev does not match the line before)")
        if rec.get("hash") != event_hash(rec):
            problems.append(f"{label}:{number}: hash does not match the event's content (edited?)")
        prev = rec.get("hash", "")
    return problems


# --- anchors: a sealed (count, last hash) beside an append-only history, so deleting or truncating it is found ---

def anchor_doc(log_rel: str, lines: int, last_hash: str) -> dict[str, Any]:
    """The sealed anchor of a history of LINES lines ending in LAST_HASH (schemas/log_anchor.schema.json)."""
    return digests.stamp({"schema_version": SCHEMA_VERSION, "log": log_rel, "lines": lines, "last_hash": last_hash})


def _read_anchor(anchor: Path, label: str) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        doc = fs.read_json(anchor, 1 << 16)
    except FileNotFoundError:
        return None, []
    except (OSError, InputError) as exc:
        return None, [f"{label}: unreadable ({getattr(exc, 'strerror', None) or exc})"]
    problems = [f"{label}: {ptr}: {msg}" for ptr, msg in iter_errors("log_anchor", doc)]
    return (None, problems) if problems else (doc, digests.stamp_problems(doc, label))


def append_anchored(path: Path, anchor: Path, log_rel: str, fields: dict[str, Any]) -> dict[str, Any]:
    """append_record, then rewrite ANCHOR to cover the new line. Refuses (InputError) to append to a history that
    disagrees with its anchor (deleted, truncated, re-chained, the anchor removed or forged): appending would
    re-anchor the damage. One line past the anchor that chains onto it is a crash between append and anchor."""
    fs.append_line(path, b"")  # cuts a torn tail first, as append_record does
    last = _last(path)
    doc, problems = _read_anchor(anchor, str(anchor))
    if not problems:
        if doc is None and last is not None:
            problems = [f"{anchor}: missing, but {path} holds {last['seq']} line(s) (the anchor was deleted)"]
        elif doc is not None and last is None and doc["lines"]:
            problems = [f"{path}: missing or empty, its anchor says {doc['lines']} line(s) (deleted or truncated)"]
        elif doc is not None and last is not None and not (
                (last["seq"] == doc["lines"] and last["hash"] == doc["last_hash"])
                or (last["seq"] == doc["lines"] + 1 and last.get("prev") == doc["last_hash"])):
            problems = [f"{path}: ends at line {last['seq']}, its anchor says {doc['lines']} line(s) ending in "
                        f"{doc['last_hash'][:12]}… (truncated or rewritten)"]
    if problems:
        raise InputError(f"{problems[0]}; refusing to append (`tc artifacts verify --all` says more; move both files "
                         "away to start a new history)")
    record = append_record(path, fields)
    fs.write_json(anchor, anchor_doc(log_rel, record["seq"], record["hash"]))
    return record


def anchor_problems(path: Path, anchor: Path, label: str, anchor_label: str) -> list[str]:
    """What a history at PATH disagrees with in its ANCHOR: deleted, truncated, edited and re-chained, lines past
    the anchor (a crash between append and anchor, or lines added by hand), the anchor deleted or forged."""
    doc, problems = _read_anchor(anchor, anchor_label)
    if problems:
        return problems
    try:
        raw = fs.read_bytes(path)
    except FileNotFoundError:
        raw = None
    except (OSError, InputError) as exc:
        return [f"{label}: cannot read ({getattr(exc, 'strerror', None) or exc})"]
    if doc is None:
        return [f"{anchor_label}: missing, but {label} exists (the anchor was deleted)"] if raw else []
    if raw is None:
        return [f"{label}: missing, its anchor says {doc['lines']} line(s) (deleted)"] if doc["lines"] else []
    lines = raw.split(b"\n")[:-1]
    if len(lines) < doc["lines"]:
        return [f"{label}: {len(lines)} line(s), its anchor says {doc['lines']} (truncated)"]
    if doc["lines"]:
        try:
            at = fs.parse_json(lines[doc["lines"] - 1], f"{label}:{doc['lines']}")
        except InputError as exc:
            return [str(exc)]
        if not isinstance(at, dict) or at.get("hash") != doc["last_hash"]:
            return [f"{label}:{doc['lines']}: hash differs from its anchor (the history was edited and re-chained)"]
    if len(lines) > doc["lines"]:
        return [f"{label}: {len(lines) - doc['lines']} line(s) past its anchor (added by hand, or a crash between the "
                "append and the anchor)"]
    return []
