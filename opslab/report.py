"""report.md, rendered only from a run's artifacts on disk (never from in-memory state).

SECTIONS is the registry: each entry renders one concern from the artifacts it needs and returns
None when they are absent, so a section appears once its operation has run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from opslab.escaping import md, md_code

Section = Callable[[Path, dict[str, Any]], "str | None"]


def _load(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| field | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def overview(folder: Path, meta: dict[str, Any]) -> str | None:
    spec = _load(folder, "runspec.json") or {}
    rows = [
        ("run_id", meta.get("run_id")),
        ("status", meta.get("status")),
        ("engine", meta.get("engine_kind")),
        ("scenario", f"{meta['scenario']['name']} {meta['scenario']['version']}" if meta.get("scenario") else None),
        ("strategy (identity only)", f"{meta['strategy']['name']} {meta['strategy']['version']}" if meta.get("strategy") else None),
        ("config hash", f"`{meta.get('config_hash')}`"),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(meta.get("versions", {}).items()))),
    ]
    text = "## Overview\n\n"
    if spec.get("description"):
        text += md(spec["description"].strip(), line_start=True) + "\n\n"
    return text + _table(rows)


def dataset(folder: Path, meta: dict[str, Any]) -> str | None:
    ds = meta.get("dataset")
    if not ds:
        return None
    rows = [("dataset_id", ds["dataset_id"]), ("fingerprint", f"`{ds['fingerprint']}`"), ("bars", ds["rows"]),
            ("first bar close", ds["first_bar_close"]), ("last bar close", ds["last_bar_close"])]
    return "## Dataset\n\n" + _table(rows)


def journal_summary(folder: Path, meta: dict[str, Any]) -> str | None:
    path = folder / "journal.jsonl"
    if not path.exists():
        return None
    lines = ["## Journal", "", "| seq | event |", "| --- | --- |"]
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            lines.append("| ? | (unreadable line: run `tc artifacts verify`) |")
            continue
        lines.append(f"| {rec.get('seq')} | {rec.get('event')} |")
    return "\n".join(lines)


def scenario_execution(folder: Path, meta: dict[str, Any]) -> str | None:
    summary = meta.get("engine_summary")
    if not summary:
        return None
    rows = [(name.replace("_", " "), value) for name, value in summary["counters"].items()]
    rows += [(f"final balance {ccy}", amount) for ccy, amount in sorted(summary["final_balances"].items())]
    rows += [("open positions at end", summary["open_positions"]), ("open orders at end", summary["open_orders"])]
    text = (f"## Scenario execution\n\nMode: {summary['mode']}, {summary['bars_given']} bars given to NautilusTrader. "
            "Counters of a smoke test of the plumbing, not a performance claim.\n\n")
    return text + _table(rows)


def safety_status(folder: Path, meta: dict[str, Any]) -> str | None:
    seen = meta.get("safety")
    if not seen:
        return None
    state = {"engaged": "ENGAGED", "released": "released", "corrupt": "UNREADABLE (treated as engaged)"}[seen["kill_switch"]]
    rows = [("kill switch", state), ("since", md(seen["since"])), ("reason", md(seen["reason"]))]
    life = _load(folder, "paper/lifecycle.json")
    if life:
        rows += [("paper lifecycle", life["state"]), ("stop reason", md(life["stop_reason"])),
                 ("orders cancelled on stop", md(", ".join(life["cancelled_orders"]) or None))]
    return "## Safety status\n\nThe kill switch as this run last saw it (`tc killswitch status` shows it now).\n\n" + _table(rows)


def reconciliation(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "reconciliation.json")
    if not doc:
        return None
    lines = [f"## Reconciliation\n\n**{doc['status'].upper()}**: {doc['summary']['matches']}/{doc['summary']['checks']} checks match "
             f"(expected {md_code(doc['expected_file'])}, observed {md_code(doc['observed_source'])}).\n",
             "| kind | key | field | expected | observed | difference | tolerance | status |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in doc["checks"]:
        lines.append(f"| {c['kind']} | {md(c['key'])} | {c['field']} | {md(c['expected'])} | {md(c['observed'])} | {md(c['difference'])} | {md(c['tolerance'])} | {c['status']} |")
    return "\n".join(lines)


def connectivity_readiness(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "connectivity_readiness.json")
    if not doc:
        return None
    rows = [(f"{p['role']} (`{p['env']}`)", p["state"]) for p in doc["placeholders"]]
    head = "READY" if doc["ready"] else f"NOT READY: missing {md(', '.join(doc['missing']))}"
    return f"## Connectivity readiness\n\n**{head}** for {doc['venue']} (names only; values are never read or written).\n\n" + _table(rows)


def connectivity_probe(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "connectivity_probe.json")
    if not doc:
        return None
    rows = [("target", md(doc["target"])), ("outcome", doc["outcome"]), ("HTTP status", doc["http_status"]),
            ("error class", md(doc["error_class"])), ("timeout", f"{doc['timeout_ms']} ms")]
    return "## Connectivity probe\n\nLoopback only; see the probe runbook when it is down.\n\n" + _table(rows)


SECTIONS: list[Section] = [overview, dataset, scenario_execution, safety_status, reconciliation, connectivity_readiness,
                           connectivity_probe, journal_summary]


def render(folder: Path) -> str:
    """The whole report.md text for the run in FOLDER."""
    meta = _load(folder, "metadata.json") or {}
    spec = _load(folder, "runspec.json") or {}
    title = (spec.get("report") or {}).get("title") or f"Run {meta.get('run_id', folder.name)}"
    parts = [f"# {md(title)}", "", "Rendered by `tc` from this run's artifacts; `tc artifacts verify` checks them.", ""]
    for section in SECTIONS:
        body = section(folder, meta)
        if body:
            parts += [body, ""]
    return "\n".join(parts)
