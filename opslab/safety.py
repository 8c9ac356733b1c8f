"""The file-based kill switch: engage, release, status, and the gate runs check. Its rules live here only.

The truth is the hash-chained history, state/kill_switch_events.jsonl; state/kill_switch.json is
derived from it (the last event) and written after each append for people and tools to read. Every
read checks the two against each other and fails closed: a broken or unreadable history, a state
file that disagrees with the history's last event (a crash between the append and the state write,
or a hand edit), or a state file with no history counts as ENGAGED until an operator inspects it and
runs `tc killswitch release --force`. Neither file present means nobody ever engaged it: released.

A node with engine.node.auto_halt records its automatic soft halts in the same history (auto_reduce when
a stream went stale and it moved itself to REDUCING, auto_release when the stream was fresh again), so one
chain tells every change of who may trade. They do not engage the switch: its state comes from the last
engage or release only.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
from pathlib import Path
from typing import Any

from opslab import clock, contracts, fs, journal, nodes
from opslab.contracts import SCHEMA_VERSION, errors_for, load_schema
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result

MANUAL = ("engage", "release")  # the actions the switch's state follows; auto_reduce and auto_release are a node's own
AUTO = ("auto_reduce", "auto_release")
REPAIR = "inspect state/, then run `tc killswitch release --force --reason TEXT` (or engage it again)"


def state_path(base: Path | None = None) -> Path:
    return (base or fs.root()) / contracts.artifact("kill_switch").path


def events_path(base: Path | None = None) -> Path:
    return (base or fs.root()) / contracts.artifact("kill_switch_events").path


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _read_state(base: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """(state document, None) or (None, why it is unusable); (None, None) when absent."""
    path = state_path(base)
    try:
        doc = fs.read_json(path, limit=1 << 16)
    except FileNotFoundError:
        return None, None
    except (OSError, InputError) as exc:
        return None, f"{path}: unreadable ({getattr(exc, 'strerror', None) or exc})"
    problems = errors_for("kill_switch", doc, str(path))
    return (None, problems[0]) if problems else (doc, None)


def snapshot(base: Path | None = None) -> dict[str, Any]:
    """The switch as a run should see it: engaged (bool), state (engaged | released | corrupt),
    since, by, reason, warning. BASE: an artifacts root other than the configured one (the exporter)."""
    blank = {"state_file": contracts.artifact("kill_switch").path, "warning": None, "since": None, "by": None, "reason": None}
    doc, state_problem = _read_state(base)
    history = events_path(base)
    try:
        raw = fs.read_bytes(history, limit=16 << 20)
    except FileNotFoundError:
        raw = None
    except (OSError, InputError) as exc:
        return _corrupt(blank, f"{history}: unreadable ({getattr(exc, 'strerror', None) or exc})")
    if state_problem:
        return _corrupt(blank, state_problem)
    if raw is None:
        if doc is None:
            return {**blank, "engaged": False, "state": "released"}
        return _corrupt(blank, f"{state_path(base)} exists but its history {history.name} is missing")
    problems = journal.verify_bytes(raw, "kill_switch_event", history.name)
    if problems:
        return _corrupt(blank, f"history broken: {problems[0]}")
    last = _last_manual(raw.split(b"\n")[:-1], history.name)
    if last is None:
        return {**blank, "engaged": False, "state": "released"} if doc is None else _corrupt(blank, "state file present, no engage or release in its history")
    state = "engaged" if last["action"] == "engage" else "released"
    if doc is None or doc["state"] != state or doc["event_seq"] != last["seq"]:
        seen = "missing" if doc is None else f"{doc['state']} (event {doc['event_seq']})"
        return _corrupt(blank, f"state file says {seen} but the history's last engage or release (event {last['seq']}) says {state}")
    return {**blank, "engaged": state == "engaged", "state": state, "since": last["ts"], "by": last["by"], "reason": last["reason"]}


def _last_manual(lines: list[bytes], name: str) -> dict[str, Any] | None:
    """The last engage or release of the (verified) history LINES; None when it holds none."""
    for line in reversed(lines):
        event = fs.parse_json(line, name)
        if event["action"] in MANUAL:
            return event
    return None


def _corrupt(base: dict[str, Any], why: str) -> dict[str, Any]:
    warning = f"kill switch state cannot be trusted, treating it as ENGAGED (fail closed): {why}; {REPAIR}"
    return {**base, "engaged": True, "state": "corrupt", "warning": warning}


def gate() -> str | None:
    """None when runs may proceed; otherwise why not (the paper and node preflight and step checks)."""
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
    target = state_path()
    kind = dict(fs.entries(target.parent)).get(target.name)
    if kind not in (None, "file"):  # checked before the history changes: nothing is appended that the state cannot follow
        what = {"dir": "folder", "link": "symlink (tc never writes through links)"}.get(kind, "special file")
        raise InputError(f"{target}: is a {what}, expected the kill switch state file; move it away")
    event = journal.append_record(events_path(), {"action": "engage" if state == "engaged" else "release", "by": _who(),
                                                  "reason": reason, "forced": forced})
    doc = {"schema_version": SCHEMA_VERSION, "state": state, "since": event["ts"], "by": event["by"], "reason": reason,
           "event_seq": event["seq"]}
    contracts.ensure_valid("kill_switch", doc, str(state_path()))
    fs.write_json(state_path(), doc)
    return doc


def _change(state: str, reason: str, force: bool, check: bool, wake_s: float | None = None) -> Result:
    """Converge the switch to STATE; with WAKE_S (engage), then wake every registered node and wait for its
    HALTED, still under the switch's lock (a release cannot slip between the write and the wake)."""
    _check_reason(reason)
    verb = "engage" if state == "engaged" else "release"
    if check and not fs.root().exists():
        return Result("changed" if state == "engaged" else "ok", f"would {verb} the kill switch" if state == "engaged" else "kill switch already released")
    (fs.root_for_read if check else fs.root_for_write)()
    with (contextlib.nullcontext() if check else fs.locked(state_path().parent, "the kill switch", wait=True)):
        snap = snapshot()
        if snap["state"] == "corrupt" and not force and state == "released":
            raise InputError(f"{snap['warning']}")
        if snap["state"] == state:
            since = f" since {snap['since']} by {snap['by']}: {snap['reason']}" if state == "engaged" else ""
            result = Result("ok", f"kill switch already {state}{since}", data={"kill_switch": snap})
        elif check:
            return Result("changed", f"would {verb} the kill switch", data={"kill_switch": snap})
        else:
            doc = _set(state, reason, forced=snap["state"] == "corrupt")
            label = "ENGAGED" if state == "engaged" else "released"
            result = Result("changed", f"kill switch {label} by {doc['by']}: {reason}", [str(state_path())], {"kill_switch": snapshot()})
        if wake_s is not None and not check:
            _confirm(result, nodes.wake_all(reason, wake_s), wake_s)
    return result


def _confirm(result: Result, woken: dict[str, Any], wake_s: float) -> None:
    """Add the nodes' acknowledgements to an engage's RESULT; exit 4 when one is missing (the switch stays engaged)."""
    acks, missing, refused, stale = woken["acknowledged"], woken["not_acknowledged"], woken["refused"], woken["stale"]
    result.data["nodes"] = woken
    result.details += [f"node {a['run_id']}: HALTED acknowledged after {a['latency_ms']:.1f} ms ({a['phase']}, "
                       f"{a['orders_in_flight']} order(s) in flight)" for a in acks]
    result.details += [f"node {s['run_id']}: stale registration removed ({s['why']})" for s in stale]
    result.details += [f"node {m['run_id']}: NOT confirmed HALTED within {wake_s:g} s: {m['why']}" for m in missing]
    result.details += [f"{r['entry']}: refused ({r['why']}); a node registered there cannot be woken" for r in refused]
    slowest = f" (slowest {max(a['latency_ms'] for a in acks):.1f} ms)" if acks else ""
    result.summary += f"; {len(acks)} running node(s) acknowledged HALTED{slowest}"
    if stale:
        result.summary += f", {len(stale)} stale registration(s) removed"
    if missing or refused:
        names = ", ".join([m["run_id"] for m in missing] + [r["entry"] for r in refused])
        result.summary += f"; NOT confirmed: {names} (the switch stays engaged; a running node's own poll of it still halts it)"
        result.status, result.exit_code = "unconfirmed", EXIT_CODES["check"]


def engage(reason: str, check: bool = False, wait_s: float = nodes.WAKE_TIMEOUT_S) -> Result:
    """Engage the switch (ok and no event when it already is; engaging also repairs a corrupt state), then wake
    every running node and wait at most WAIT_S seconds until each acknowledged HALTED with no order in flight.
    Exit 0 means no node sends another order; 4 names the nodes that did not confirm."""
    if not 0.1 <= wait_s <= 60:
        raise InputError(f"--wait-seconds: {wait_s:g}: expected 0.1 to 60 seconds")
    if check:
        planned = _change("engaged", reason, force=True, check=True)
        if fs.root().exists():
            docs, refused = nodes.registered()
            planned.data["nodes"] = {"registered": [d["run_id"] for d in docs], "refused": refused}
            planned.summary += f"; would wake {len(docs)} registered node(s)"
        return planned
    return _change("engaged", reason, force=True, check=False, wake_s=wait_s)


def release(reason: str, force: bool = False, check: bool = False) -> Result:
    """Release the switch; ok when already released; a corrupt state needs --force."""
    return _change("released", reason, force=force, check=check)


def status() -> Result:
    """Current state: exit 0 and `released`, or exit 3 and `engaged` (also when it cannot be trusted)."""
    fs.root_for_read()
    snap = snapshot()
    if not snap["engaged"]:
        return Result("released", "kill switch released", data={"kill_switch": snap})
    text = snap["warning"] if snap["state"] == "corrupt" else f"kill switch ENGAGED since {snap['since']} by {snap['by']}: {snap['reason']}"
    return Result("engaged", text, data={"kill_switch": snap}, exit_code=EXIT_CODES["safety"])


def record_auto(action: str, reason: str, run_id: str) -> dict[str, Any]:
    """Append a node's automatic soft halt (ACTION auto_reduce or auto_release, REASON `auto: stale <stream> ...`) to the
    switch's history, under the switch's lock (an engage holds it while it wakes the nodes: call this off the node's loop).
    The switch's state does not change; the event is what `tc artifacts verify` checks with the rest of the chain."""
    if action not in AUTO:
        raise ValueError(f"{action!r}: expected one of {', '.join(AUTO)}")
    fs.root_for_write()
    with fs.locked(state_path().parent, "the kill switch", wait=True):
        return journal.append_record(events_path(), {"action": action, "by": _who(), "reason": reason[:200], "forced": False,
                                                     "run_id": run_id})


def record() -> dict[str, Any]:
    """The metadata.safety block for a run: the switch as seen now."""
    snap = snapshot()
    return {"kill_switch": snap["state"], "engaged": snap["engaged"], "since": snap["since"], "reason": snap["reason"], "checked_at": clock.now_iso()}
