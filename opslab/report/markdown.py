"""report.md, rendered only from a run's artifacts on disk (never from in-memory state).

SECTIONS is the registry: each entry renders one concern from the artifacts it needs and returns
None when they are absent, so a section appears once its operation has run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from opslab import contracts, fs
from opslab.escaping import md
from opslab.errors import InputError

Section = Callable[[Path, dict[str, Any]], "str | None"]


def _load(folder: Path, name: str) -> Any:
    """A registered run artifact, or None when absent or unreadable (verify reports those)."""
    try:
        return fs.read_json(folder / contracts.artifact(name).path)
    except (OSError, InputError):
        return None


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| field | value |", "| --- | --- |"]
    lines += [f"| {md(k)} | {md(v)} |" for k, v in rows]
    return "\n".join(lines)


def overview(folder: Path, meta: dict[str, Any]) -> str | None:
    spec = _load(folder, "runspec") or {}
    rows = [
        ("run_id", meta.get("run_id")),
        ("status", meta.get("status")),
        ("engine", meta.get("engine_kind")),
        ("scenario", f"{meta['scenario']['name']} {meta['scenario']['version']}" if meta.get("scenario") else None),
        ("strategy (identity only)", f"{meta['strategy']['name']} {meta['strategy']['version']}" if meta.get("strategy") else None),
        ("config hash", meta.get("config_hash")),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(meta.get("versions", {}).items()))),
    ]
    if meta.get("engine_config_hash"):  # runs made before it existed have none
        rows.insert(-1, ("config hash on this engine", meta["engine_config_hash"]))
    text = "## Overview\n\n"
    if spec.get("description"):
        text += md(spec["description"].strip()) + "\n\n"
    return text + _table(rows)


def dataset(folder: Path, meta: dict[str, Any]) -> str | None:
    ds = meta.get("dataset")
    if not ds:
        return None
    rows = [("dataset_id", ds["dataset_id"]), ("fingerprint", ds["fingerprint"]), ("bars", ds["rows"]),
            ("first bar close", ds["first_bar_close"]), ("last bar close", ds["last_bar_close"])]
    return "## Dataset\n\n" + _table(rows)


def journal_summary(folder: Path, meta: dict[str, Any]) -> str | None:
    from opslab import journal

    events = journal.read(folder / contracts.artifact("journal").path)
    if not events:
        return None
    lines = ["## Journal", "", "| seq | event |", "| --- | --- |"]
    lines += [f"| {md(rec.get('seq'))} | {md(rec.get('event'))} |" for rec in events]
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
    rows = [("kill switch", state), ("since", seen["since"] or "-"), ("reason", seen["reason"] or "-")]
    life = _load(folder, "paper_lifecycle")
    if life:
        rows += [("paper lifecycle", life["state"]), ("stop reason", md(life["stop_reason"])),
                 ("orders cancelled on stop", md(", ".join(life["cancelled_orders"]) or None))]
    return "## Safety status\n\nThe kill switch as this run last saw it (`tc killswitch status` shows it now).\n\n" + _table(rows)


def reconciliation(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "reconciliation")
    if not doc:
        return None
    lines = [f"## Reconciliation\n\n**{md(doc['status'].upper())}**: {doc['summary']['matches']}/{doc['summary']['checks']} checks match "
             f"(expected {md(doc['expected_file'])}, observed {md(doc['observed_source'])}).\n",
             "| kind | key | field | expected | observed | difference | tolerance | status |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in doc["checks"]:
        cells = [c["kind"], c["key"], c["field"], c["expected"], c["observed"], c["difference"] or "-", c["tolerance"] or "-", c["status"]]
        lines.append("| " + " | ".join(md(cell) for cell in cells) + " |")
    return "\n".join(lines)


def connectivity_readiness(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "connectivity_readiness")
    if not doc:
        return None
    rows = [(f"{p['role']} ({p['env']})", p["state"]) for p in doc["placeholders"]]
    head = "READY" if doc["ready"] else f"NOT READY: missing {', '.join(doc['missing'])}"
    return f"## Connectivity readiness\n\n**{md(head)}** for {md(doc['venue'])} (names only; values are never read or written).\n\n" + _table(rows)


def connectivity_probe(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "connectivity_probe")
    if not doc:
        return None
    rows = [("target", doc["target"]), ("outcome", doc["outcome"]), ("HTTP status", doc["http_status"]),
            ("latency", f"{doc['latency_ms']} ms" if doc["latency_ms"] is not None else "-"), ("probed at", doc["probed_at"]),
            ("error class", doc["error_class"] or "-"), ("timeout", f"{doc['timeout_ms']} ms")]
    return "## Connectivity probe\n\nLoopback only; see the probe runbook when it is down.\n\n" + _table(rows)


def cache_database(folder: Path, meta: dict[str, Any]) -> str | None:
    doc = _load(folder, "node_cache_db")
    if not doc:
        return None
    db = doc["database"]
    before, after = doc["before"], doc["after"]
    names = sorted(set(before["key_counts"]) | set((after or {}).get("key_counts", {})))
    lines = [f"## Cache database\n\nNautilusTrader's cache database ({md(db['type'])}, "
             f"{'started by tc under node/cache_db/' if db['managed'] else 'given by --cache-db-url'}; flush_on_start "
             f"{str(db['flush_on_start']).lower()}): keys by collection when this start of the node began and when it stopped"
             f"{'' if after else ' (not recorded: the node did not stop by itself)'}.\n",
             "| collection | before | after |", "| --- | --- | --- |"]
    lines += [f"| {md(n)} | {before['key_counts'].get(n, 0)} | {md(after['key_counts'].get(n, 0) if after else '-')} |" for n in names]
    lines.append(f"| all keys | {before['keys']} | {md(after['keys'] if after else '-')} |")
    if doc.get("comparison"):
        lines += ["", "Node, cache database and venue when the node stopped (open orders: client order ids; position: signed net quantity):", "",
                  "| item | node | cache database | venue | agree |", "| --- | --- | --- | --- | --- |"]
        for name, item in doc["comparison"].items():
            cells = [", ".join(v) or "none" if isinstance(v, list) else v for v in (item["node"], item["cache_db"], item["venue"])]
            lines.append(f"| {md(name)} | " + " | ".join(md(c) for c in cells) + f" | {'yes' if item['agree'] else '**NO**'} |")
    return "\n".join(lines)


SECTIONS: list[Section] = [overview, dataset, scenario_execution, safety_status, cache_database, reconciliation, connectivity_readiness,
                           connectivity_probe, journal_summary]


def render(folder: Path) -> str:
    """The whole report.md text for the run in FOLDER."""
    meta = _load(folder, "metadata") or {}
    spec = _load(folder, "runspec") or {}
    title = (spec.get("report") or {}).get("title") or f"Run {meta.get('run_id', folder.name)}"
    parts = [f"# {md(title)}", "", "Rendered by `tc` from this run's artifacts; `tc artifacts verify` checks them.", ""]
    for section in SECTIONS:
        body = section(folder, meta)
        if body:
            parts += [body, ""]
    return "\n".join(parts)


def render_matrix(doc: dict[str, Any]) -> str:
    """A drills/matrix.json document as Markdown: the engines, then drill x engine (verdict, time to detect, alert),
    then each drill's findings per engine and what changed (docs/upgrading.md is generated from it)."""
    engines = [row["engine"] for row in doc["engines"]]
    lines = ["| engine | Python | environment | drills detected |", "| --- | --- | --- | --- |"]
    lines += [f"| nautilus_trader {md(r['engine'])} | {md(r['python'])} | `{md(r['environment'])}` | "
              f"{doc['summary']['passed'].get(r['engine'], 0)}/{doc['summary']['drills']} |" for r in doc["engines"]]
    lines += ["", "| drill | " + " | ".join(f"{md(e)}" for e in engines) + " | changed |", "| --- |" + " --- |" * (len(engines) + 1)]
    for drill in doc["drills"]:
        cells = []
        for engine in engines:
            cell = drill["cells"].get(engine)
            if cell is None:
                cells.append("no result")
                continue
            ttd = cell["time_to_detect"]
            value = "not detected" if ttd["value"] is None else f"{ttd['value']:g} {ttd['unit']}"
            alert = (cell.get("alert") or {}).get("alertname")
            cells.append(f"{cell['verdict']}, {value}" + (f", {alert}" if alert else ""))
        lines.append(f"| [{md(drill['drill'])}]({drill['runbook']}) | " + " | ".join(md(c) for c in cells) + f" | {'**yes**' if drill['changed'] else 'no'} |")
    for drill in doc["drills"]:
        lines += ["", f"#### {md(drill['drill'])}", ""]
        for engine in engines:
            for finding in (drill["cells"].get(engine) or {}).get("findings") or []:
                lines.append(f"- **{md(engine)}**: {md(finding)}")
        lines += ["", f"What changed: {md('; '.join(drill['changes']))}" if drill["changes"] else "What changed: nothing (numbers aside)."]
    return "\n".join(lines) + "\n"
