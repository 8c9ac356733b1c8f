"""Append-only, hash-chained event log (journal.jsonl; also the kill switch history).

Each line is one JSON event holding `prev` (the hash of the line before; 64 zeros for the first)
and `hash` (sha256 over the canonical JSON of the event without `hash`). Lines are appended one at
a time with fsync, so a crash loses at most the line being written, and `verify` finds edits,
truncation, reordering and torn lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from opslab import clock
from opslab.artifacts import bump_generation, canonical_json
from opslab.contracts import SCHEMA_VERSION, iter_errors

GENESIS = "0" * 64


def event_hash(event: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of EVENT without its `hash` field."""
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def read(path: Path) -> list[dict[str, Any]]:
    """All complete events of a journal (a missing file is empty). Does not verify."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for line in raw.split(b"\n"):
        if line.strip():
            try:
                events.append(json.loads(line))
            except ValueError:
                break
    return events


def append(path: Path, run_id: str, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append one run journal event (fsync'd) chained to the last one, and return it."""
    return append_record(path, {"event": event, "run_id": run_id, "data": data or {}})


def append_record(path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Append FIELDS plus schema_version, seq, ts, prev and hash as one chained line (fsync'd).

    Callers hold the lock of whatever the log belongs to, so seq and prev cannot race.
    """
    path = Path(path)
    _drop_torn_tail(path)
    events = read(path)
    last = events[-1] if events else None
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "seq": (last["seq"] + 1) if last else 1,
        "ts": clock.now_iso(),
        **fields,
        "prev": last["hash"] if last else GENESIS,
    }
    record["hash"] = event_hash(record)
    line = canonical_json(record) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    bump_generation(path)
    return record


def _drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (a crash in the middle of a write) so the chain can go on.

    Lines are written with one write() each and fsynced, so a line without its newline was never
    a complete event; keeping it would make every later line unreadable.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        fh.truncate(data.rfind(b"\n") + 1)
        fh.flush()
        os.fsync(fh.fileno())


def has_event(path: Path, event: str, **match: Any) -> bool:
    """True when the journal already holds EVENT whose data contains MATCH (for idempotent appends)."""
    for rec in read(path):
        if rec.get("event") == event and all(rec.get("data", {}).get(k) == v for k, v in match.items()):
            return True
    return False


def verify(path: Path, schema: str = "journal_event") -> list[str]:
    """Problems found in a journal: schema violations, broken chain, gaps, torn or edited lines."""
    problems: list[str] = []
    name = Path(path).name
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return [f"{name}: cannot read ({exc.strerror})"]
    if raw and not raw.endswith(b"\n"):
        problems.append(f"{name}: last line is torn (no trailing newline)")
    prev = GENESIS
    for number, line in enumerate(raw.split(b"\n")[:-1] if raw.endswith(b"\n") else raw.split(b"\n"), start=1):
        try:
            rec = json.loads(line)
        except ValueError:
            problems.append(f"{name}:{number}: not valid JSON")
            return problems
        for ptr, msg in iter_errors(schema, rec):
            problems.append(f"{name}:{number}: {ptr}: {msg}")
        if not isinstance(rec, dict):
            return problems
        if rec.get("seq") != number:
            problems.append(f"{name}:{number}: seq {rec.get('seq')!r}, expected {number}")
        if rec.get("prev") != prev:
            problems.append(f"{name}:{number}: chain broken (prev does not match the line before)")
        if rec.get("hash") != event_hash(rec):
            problems.append(f"{name}:{number}: hash does not match the event's content (edited?)")
        prev = rec.get("hash", "")
    return problems
