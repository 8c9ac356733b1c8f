"""The file-based kill switch: engage, release, status, and the gate runs check.

State lives in artifacts/state/kill_switch.json (current) and kill_switch_events.jsonl (history,
hash-chained like a run journal); both are written under a lock on the state folder. The switch
fails closed: a state file that cannot be read, is not JSON or breaks its schema counts as ENGAGED
until an operator inspects it and runs `tc killswitch release --force`. A missing file counts as
released (nobody ever engaged it).
"""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path
from typing import Any

from opslab import artifacts, clock, journal
from opslab.contracts import SCHEMA_VERSION, errors_for, load_schema
from opslab.errors import InputError, SafetyBlocked
from opslab.result import Result

STATE_FILE = "state/kill_switch.json"
EVENTS_FILE = "state/kill_switch_events.jsonl"


def state_path() -> Path:
    return artifacts.root() / STATE_FILE


def events_path() -> Path:
    return artifacts.root() / EVENTS_FILE


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def snapshot() -> dict[str, Any]:
    """The switch as a run should see it: engaged (bool), state, since, by, reason, warning."""
    path = state_path()
    base = {"state_file": STATE_FILE, "warning": None}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {**base, "engaged": False, "state": "released", "since": None, "by": None, "reason": None}
    except OSError as exc:
        return _corrupt(base, f"cannot read {path} ({exc.strerror})")
    try:
        doc = json.loads(raw)
    except ValueError:
        return _corrupt(base, f"{path} is not valid JSON")
    problems = errors_for("kill_switch", doc, str(path))
    if problems:
        return _corrupt(base, problems[0])
    return {**base, "engaged": doc["state"] == "engaged", "state": doc["state"], "since": doc["since"], "by": doc["by"], "reason": doc["reason"]}


def _corrupt(base: dict[str, Any], why: str) -> dict[str, Any]:
    warning = (f"kill switch state is unreadable, treating it as ENGAGED (fail closed): {why}; inspect it, then run "
               "`tc killswitch release --force --reason TEXT` to repair")
    return {**base, "engaged": True, "state": "corrupt", "since": None, "by": None, "reason": None, "warning": warning}


def gate() -> str | None:
    """None when runs may proceed; otherwise why not (used by the paper preflight and step checks)."""
    snap = snapshot()
    if not snap["engaged"]:
        return None
    if snap["state"] == "corrupt":
        return snap["warning"]
    return f"engaged since {snap['since']} by {snap['by']}: {snap['reason']}"


def _check_reason(reason: str) -> None:
    limit = load_schema("kill_switch")["properties"]["reason"]["maxLength"]
    if not reason or not reason.strip():
        raise InputError("--reason: expected a non-empty text saying why (it is kept in the switch's history)")
    if len(reason) > limit:
        raise InputError(f"--reason: {len(reason)} characters, at most {limit}")


def _set(state: str, reason: str, forced: bool) -> dict[str, Any]:
    who, now = _who(), clock.now_iso()
    event = journal.append_record(events_path(), {"action": "engage" if state == "engaged" else "release", "by": who,
                                                   "reason": reason, "forced": forced})
    doc = {"schema_version": SCHEMA_VERSION, "state": state, "since": now, "by": who, "reason": reason, "event_seq": event["seq"]}
    artifacts.write_validated(state_path(), doc, "kill_switch")
    return doc


def engage(reason: str, check: bool = False) -> Result:
    """Engage the switch; ok (and no event) when it already is."""
    _check_reason(reason)
    artifacts.ensure_writable_root()
    with artifacts.waiting_lock(state_path().parent):
        snap = snapshot()
        if snap["state"] == "engaged":
            return Result("ok", f"kill switch already engaged since {snap['since']} by {snap['by']}: {snap['reason']}", data={"kill_switch": snap})
        if check:
            return Result("changed", "would engage the kill switch", data={"kill_switch": snap})
        doc = _set("engaged", reason, forced=False)
    return Result("changed", f"kill switch ENGAGED by {doc['by']}: {reason}", [str(state_path())], {"kill_switch": snapshot()})


def release(reason: str, force: bool = False, check: bool = False) -> Result:
    """Release the switch; ok when already released; a corrupt state needs --force."""
    _check_reason(reason)
    artifacts.ensure_writable_root()
    with artifacts.waiting_lock(state_path().parent):
        snap = snapshot()
        if snap["state"] == "corrupt" and not force:
            raise InputError(f"{state_path()}: kill switch state is unreadable or invalid (treated as engaged); "
                             "inspect it, then use `tc killswitch release --force --reason TEXT`")
        if snap["state"] == "released":
            return Result("ok", "kill switch already released", data={"kill_switch": snap})
        if check:
            return Result("changed", "would release the kill switch", data={"kill_switch": snap})
        doc = _set("released", reason, forced=snap["state"] == "corrupt")
    return Result("changed", f"kill switch released by {doc['by']}: {reason}", [str(state_path())], {"kill_switch": snapshot()})


def status() -> Result:
    """Current state; exit 0 when released, 3 when engaged (or corrupt), so scripts can gate on it."""
    snap = snapshot()
    if not snap["engaged"]:
        return Result("ok", "kill switch released", data={"kill_switch": snap})
    text = snap["warning"] if snap["state"] == "corrupt" else f"kill switch ENGAGED since {snap['since']} by {snap['by']}: {snap['reason']}"
    return Result("ok", text, data={"kill_switch": snap}, exit_code=SafetyBlocked.exit_code)


def record() -> dict[str, Any]:
    """The metadata.safety block for a run: the switch as seen now."""
    snap = snapshot()
    return {"kill_switch": snap["state"], "engaged": snap["engaged"], "since": snap["since"], "reason": snap["reason"], "checked_at": clock.now_iso()}
