"""Alert notifications: validate an Alertmanager webhook payload, keep it, list what was kept.

The history is <root>/alerts/notifications.jsonl, hash-chained like a run journal (journal.py) and anchored
(alerts/notifications.anchor.json: its sealed line count and last hash), so `tc artifacts verify --all` finds
edits, truncation and deletion, keyed with TC_MANIFEST_KEY. A payload is validated in full before
anything is written: an invalid one changes nothing.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from opslab import contracts, fs, journal
from opslab.escaping import terminal
from opslab.contracts import load_schema, pointer
from opslab.errors import InputError
from opslab.result import Result

SCHEMA = "alert_notification"
MAX_BODY_BYTES = 1 << 20  # Alertmanager sends at most max_alerts (50 in alertmanager.yml) per notification
LIST_TAIL_BYTES = 8 << 20  # `tc alerts list` reads at most the last 8 MiB of the history


def history_path(root: Path | None = None) -> Path:
    """<root>/alerts/notifications.jsonl."""
    return (root if root is not None else fs.root()) / contracts.artifact("alert_notifications").path


@lru_cache(maxsize=1)
def _payload_validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema(SCHEMA)
    return Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/notification"})


def parse_payload(body: bytes, source: str = "payload") -> dict[str, Any]:
    """The notification BODY holds, reduced to the fields the schema keeps; InputError naming the
    first problem (JSON pointer and expectation) when it is not a version 4 webhook payload."""
    if len(body) > MAX_BODY_BYTES:
        raise InputError(f"{source}: {len(body)} bytes, more than the {MAX_BODY_BYTES} accepted")
    doc = fs.parse_json(body, source)  # strict and bounded: no NaN, no duplicate keys, nesting and numbers capped
    if not isinstance(doc, dict):
        raise InputError(f"{source}: /: expected a JSON object (Alertmanager webhook payload)")
    if doc.get("version") != "4":
        raise InputError(f"{source}: /version: expected \"4\" (Alertmanager webhook payload version 4), got {doc.get('version')!r}")
    props = load_schema(SCHEMA)["$defs"]["notification"]["properties"]
    alert_props = load_schema(SCHEMA)["$defs"]["alert"]["properties"]
    kept = {k: v for k, v in doc.items() if k in props}
    if isinstance(kept.get("alerts"), list):
        kept["alerts"] = [{k: v for k, v in a.items() if k in alert_props} if isinstance(a, dict) else a for a in kept["alerts"]]
    errors = sorted(_payload_validator().iter_errors(kept), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(f"{source}: {pointer(first.absolute_path)}: {first.message}{more}")
    return kept


def anchor_path(root: Path | None = None) -> Path:
    """<root>/alerts/notifications.anchor.json: the history's sealed line count and last hash."""
    return (root if root is not None else fs.root()) / contracts.artifact("alert_notifications_anchor").path


def record(notification: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Append one validated notification to the history (one fsync'd line), re-anchor it, and return the line;
    InputError when the history disagrees with its anchor (deleted, truncated, rewritten)."""
    path = history_path(root)
    with fs.locked(path.parent, "the alert history", wait=True):  # concurrent deliveries: seq/prev cannot race
        return journal.append_anchored(path, anchor_path(root), contracts.artifact("alert_notifications").path,
                                       {"notification": notification})


def _tail_lines(path: Path) -> list[bytes]:
    """Complete lines of the last LIST_TAIL_BYTES of PATH (a partial first line is dropped)."""
    with fs.open_read(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        start = max(0, size - LIST_TAIL_BYTES)
        fh.seek(start)
        data = fh.read(LIST_TAIL_BYTES)
    lines = data.split(b"\n")
    if start:
        lines = lines[1:]
    return [line for line in lines[:-1] if line.strip()]  # the last piece has no newline yet (or is empty)


def rows(line: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per alert of a history line: when, status, name, severity, summary, runbook."""
    out = []
    for alert in line["notification"]["alerts"]:
        labels, notes = alert["labels"], alert["annotations"]
        out.append({
            "seq": line["seq"], "received_at": line["ts"], "status": alert["status"],
            "alertname": labels.get("alertname", ""), "severity": labels.get("severity", ""),
            "starts_at": alert["startsAt"], "ends_at": alert["endsAt"],
            "summary": notes.get("summary", ""), "runbook_url": notes.get("runbook_url", ""),
            "labels": labels,
        })
    return out


def list_notifications(limit: int = 20) -> Result:
    """The last LIMIT alerts received (newest last), each with its status, time and runbook."""
    if limit < 1:
        raise InputError(f"--limit {limit}: expected a positive number")
    fs.root_for_read()
    path = history_path()
    if not fs.exists(path):
        return Result("ok", f"no notifications yet ({path} does not exist; is `tc alerts receive` running?)", data={"alerts": [], "path": str(path)})
    found: list[dict[str, Any]] = []
    bad = 0
    for raw in _tail_lines(path):
        try:
            found += rows(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
    shown = found[-limit:]
    details = [terminal(f"{r['received_at']}  {r['status']:<8} {r['severity']:<8} {r['alertname']}  {r['summary']}  runbook: {r['runbook_url'] or '-'}")
               for r in shown]
    if bad:
        details.append(f"{bad} unreadable line(s) skipped; `tc artifacts verify --all` says more")
    summary = f"{len(shown)} of {len(found)} alert(s) in {path}"
    return Result("ok", summary, [str(path)], {"alerts": shown, "path": str(path), "unreadable_lines": bad}, details=details)
