"""Extraction: one artifact -> the samples it contributes. Paths come from the artifact registry.

A new artifact needs one extractor here and its families in catalog.py, never server code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from opslab import clock, contracts, fs, safety

Sample = tuple[str, tuple[str, ...], float]


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return clock.epoch_seconds(text)
    except ValueError:
        return None


def _load(path: Path) -> Any:
    # Bounded, but parsed with the plain json module: the exporter reads what tc wrote (validated
    # when written) thousands of times at start-up, and a hostile file here only costs its own samples
    # (an error is counted, the scrape goes on); the strict parser is for inputs people give tc.
    return json.loads(fs.read_input(path, "artifact", fs.MAX_JSON_BYTES))


def run_samples(folder: Path) -> Iterator[Sample]:
    """Every sample one run folder contributes (read only when the folder changed)."""
    from opslab.verify import quick_run_problems

    rid = folder.name
    meta = _load(folder / contracts.artifact("metadata").path)
    yield "tc_run_info", (rid, meta["engine_kind"], meta["scenario"]["name"], meta["strategy"]["name"]), 1
    yield "tc_run_status", (rid, meta["status"]), 1
    updated = _ts(meta.get("updated_at"))
    if updated is not None:
        yield "tc_run_updated_timestamp_seconds", (rid,), updated
    last_bar = _ts(meta["dataset"]["last_bar_close"]) if "dataset" in meta else None
    if last_bar is not None:
        yield "tc_run_dataset_last_bar_timestamp_seconds", (rid,), last_bar
    if "safety" in meta:
        yield "tc_run_kill_switch_engaged_at_start", (rid,), 1 if meta["safety"]["engaged"] else 0
    metrics_path = folder / contracts.artifact("metrics").path
    if metrics_path.exists():
        metrics = _load(metrics_path)
        for name, value in metrics["counters"].items():
            yield f"tc_run_{name}", (rid,), value
        for ccy, amount in metrics.get("balances", {}).items():
            yield "tc_run_balance", (rid, ccy), float(amount)
    for name, extractor in RUN_SOURCES.items():
        path = folder / contracts.artifact(name).path
        if path.exists():
            yield from extractor(rid, _load(path))
    yield "tc_artifacts_verification_problems", (rid,), len(quick_run_problems(folder, running=meta["status"] == "running"))


def _lifecycle(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_paper_steps_done", (rid, doc["state"]), doc["steps_done"]
    yield "tc_paper_recoveries", (rid,), doc["recoveries"]


def _reconciliation(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_reconciliation_checks", (rid,), doc["summary"]["checks"]
    yield "tc_reconciliation_mismatches", (rid,), doc["summary"]["mismatches"]
    evaluated = _ts(doc.get("evaluated_at"))
    if evaluated is not None:
        yield "tc_reconciliation_timestamp_seconds", (rid,), evaluated


def _readiness(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_connectivity_ready", (rid,), 1 if doc["ready"] else 0
    yield "tc_connectivity_missing_placeholders", (rid,), len(doc["missing"])


def _probe(rid: str, doc: dict) -> Iterator[Sample]:
    labels = (rid, doc["target"])
    yield "tc_connectivity_probe_up", labels, 1 if doc["outcome"] == "up" else 0
    yield "tc_connectivity_probe_http_status", labels, doc["http_status"] or 0
    if doc["latency_ms"] is not None:
        yield "tc_connectivity_probe_latency_seconds", labels, doc["latency_ms"] / 1000.0
    probed = _ts(doc.get("probed_at"))
    if probed is not None:
        yield "tc_connectivity_probe_timestamp_seconds", labels, probed


NODE_UP = ("connected", "reconciled", "running", "halted", "reducing")


def _node_lifecycle(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_node_up", (rid,), 1 if doc["state"] in NODE_UP else 0
    yield "tc_node_lifecycle_state", (rid, doc["state"]), 1
    yield "tc_node_halts", (rid,), doc["halts"]
    if "auto_halt" in doc:
        yield "tc_node_auto_halts", (rid,), doc["auto_halt"]["auto_halts"]
    yield "tc_node_heartbeat_interval_seconds", (rid,), doc["bounds"]["heartbeat_seconds"]
    if "market_data_stale_seconds" in doc["bounds"]:
        yield "tc_node_market_data_stale_after_seconds", (rid,), doc["bounds"]["market_data_stale_seconds"]


def _node_heartbeat(rid: str, doc: dict) -> Iterator[Sample]:
    beat = _ts(doc["ts"])
    if beat is not None:
        yield "tc_node_heartbeat_timestamp_seconds", (rid,), beat
    yield "tc_node_trading_halted", (rid,), 1 if doc["trading_state"] == "HALTED" else 0
    yield "tc_node_trading_reducing", (rid,), 1 if doc["trading_state"] == "REDUCING" else 0
    for stream, age in sorted((doc.get("stream_ages_seconds") or {}).items()):
        if age is not None:
            yield "tc_node_stream_age_seconds", (rid, stream), age
    if doc["seconds_since_market_data"] is not None:
        yield "tc_node_seconds_since_market_data", (rid,), doc["seconds_since_market_data"]
    for client, connected in sorted(doc["clients_connected"].items()):
        yield "tc_node_clients_connected", (rid, client), 1 if connected else 0
    yield "tc_node_open_orders", (rid,), doc["open_orders"]
    if "book_sequence_gaps" in doc:
        yield "tc_node_book_sequence_gaps", (rid,), doc["book_sequence_gaps"]
    if "fills" in doc:
        yield "tc_node_fills", (rid,), doc["fills"]
    if "fill_events" in doc:
        yield "tc_node_fill_events", (rid,), doc["fill_events"]
    if "fill_reports" in doc:
        yield "tc_node_fill_reports", (rid,), doc["fill_reports"]
    if "orders_partially_filled" in doc:
        yield "tc_node_orders_partially_filled", (rid,), doc["orders_partially_filled"]
    if "orders_unacknowledged" in doc:
        yield "tc_node_orders_unacknowledged", (rid,), doc["orders_unacknowledged"]
        yield "tc_node_oldest_unacknowledged_order_seconds", (rid,), doc["oldest_unacknowledged_order_seconds"]
    for code, n in (doc.get("orders_rejected") or {}).items():
        yield "tc_node_orders_rejected", (rid, code), n
    sign = {"LONG": 1, "SHORT": -1, "FLAT": 0}[doc["position"]["side"]]
    yield "tc_node_position_quantity", (rid,), sign * float(doc["position"]["quantity"])
    if "position_flips" in doc:
        yield "tc_node_position_flips", (rid,), doc["position_flips"]
    for origin, n in sorted((doc.get("external_orders") or {}).items()):
        yield "tc_node_external_orders", (rid, origin), n


def _node_cache_db(rid: str, doc: dict) -> Iterator[Sample]:
    latest = doc["after"] or doc["before"]
    for name, n in sorted(latest["key_counts"].items()):
        yield "tc_node_cache_db_keys", (rid, name), n
    if "comparison" in doc:
        yield "tc_node_cache_db_disagreements", (rid,), sum(1 for item in doc["comparison"].values() if not item["agree"])


# Run artifact (registry name) -> extractor.
RUN_SOURCES: dict[str, Callable[[str, dict], Iterable[Sample]]] = {
    "paper_lifecycle": _lifecycle,
    "reconciliation": _reconciliation,
    "connectivity_readiness": _readiness,
    "connectivity_probe": _probe,
    "node_lifecycle": _node_lifecycle,
    "node_heartbeat": _node_heartbeat,
    "node_cache_db": _node_cache_db,
}


def _dataset(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_dataset_rows", (doc["dataset_id"],), doc["rows"]
    yield "tc_dataset_info", (doc["dataset_id"], doc["fingerprint"]), 1


def _dataset_quality(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_dataset_quality_passed", (doc["dataset_id"],), 1 if doc["passed"] else 0
    yield "tc_dataset_quality_failed_checks", (doc["dataset_id"],), len(doc["failed_checks"])


def kill_switch_samples(root: Path) -> Iterator[Sample]:
    """The kill switch as safety.snapshot sees it (the rules live there only), and its history length."""
    snap = safety.snapshot(root)
    yield "tc_kill_switch_engaged", (), 1 if snap["engaged"] else 0
    yield "tc_kill_switch_state_valid", (), 0 if snap["state"] == "corrupt" else 1
    try:
        raw = fs.read_input(safety.events_path(root), "history", 16 << 20)
    except Exception:  # absent or unreadable: nothing to count (the snapshot already says corrupt)
        raw = b""
    yield "tc_kill_switch_events", (), raw.count(b"\n")


def _drill(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_drill_detected", (doc["drill"],), 1 if doc["detected"] else 0
    finished = _ts(doc["finished_at"])
    if finished is not None:
        yield "tc_drill_last_run_timestamp_seconds", (doc["drill"],), finished


def _scorecard(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_drills_passed", (), doc["passed"]
    yield "tc_drills_run", (), doc["total"]


def _matrix(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    for row in doc["drills"]:
        for engine, cell in row["cells"].items():
            yield "tc_drill_matrix_detected", (row["drill"], engine), 1 if cell["detected"] else 0
        yield "tc_drill_matrix_changed", (row["drill"],), 1 if row["changed"] else 0


VENUE_REQUEST_OUTCOMES = ("served", "throttled", "banned", "dropped", "errors")


def venue_faults() -> list[str]:
    """Every venue fault name, from the stats schema (a test holds it equal to venue.faults.FAULT_NAMES)."""
    return contracts.load_schema("venue_stats")["properties"]["faults_active"]["items"]["enum"]


def venue_reject_codes() -> list[str]:
    """The Binance error codes the exporter shows at 0 until seen, from the stats schema (a test holds them equal to
    venue.faults.REJECT_CODES)."""
    return contracts.load_schema("venue_stats")["properties"]["rejects"]["x-exported-codes"]


def _venue_stats(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    rid = doc["run_id"]
    for outcome in VENUE_REQUEST_OUTCOMES:  # every outcome, zeros too: increase() needs the series before it moves
        yield "tc_venue_requests", (rid, outcome), doc["requests"][outcome]
    yield "tc_venue_depth_snapshots", (rid,), doc["depth_snapshots"]
    ws = doc["ws"]
    yield "tc_venue_ws_connections", (rid,), ws["connections_opened"]
    yield "tc_venue_ws_connections_refused", (rid,), ws["connections_refused"]
    yield "tc_venue_ws_closed_by_fault", (rid,), ws["closed_by_fault"]
    yield "tc_venue_ws_subscribe_commands", (rid,), ws["subscribe_commands"]
    last = _ts(ws["last_subscribe_at"])
    if last is not None:
        yield "tc_venue_ws_last_subscribe_timestamp_seconds", (rid,), last
    for outcome in ("published", "suppressed"):
        yield "tc_venue_market_messages", (rid, outcome), doc["market_messages"][outcome]
    if "trades" in doc:
        yield "tc_venue_account_trades", (rid,), doc["trades"]["account"]
        yield "tc_venue_fill_reports_withheld", (rid,), doc["trades"]["reports_withheld"]
        if "reports_duplicated" in doc["trades"]:
            yield "tc_venue_fill_reports_duplicated", (rid,), doc["trades"]["reports_duplicated"]
    if "orders" in doc:
        yield "tc_venue_open_orders", (rid,), doc["orders"]["open"]
        yield "tc_venue_orders_partially_filled", (rid,), doc["orders"]["partially_filled"]
    if "rejects" in doc:  # the codes that matter at zero too (increase() needs the series before it moves), others once seen
        rejects = {**dict.fromkeys(venue_reject_codes(), 0), **doc["rejects"]}
        for code, n in rejects.items():
            yield "tc_venue_rejects", (rid, code), n
    if "clock_offset_ms" in doc:
        yield "tc_venue_clock_offset_seconds", (rid,), doc["clock_offset_ms"] / 1000
    if "user_streams" in doc:
        yield "tc_venue_user_streams_active", (rid,), doc["user_streams"]["active"]
        yield "tc_venue_user_streams_ended", (rid,), doc["user_streams"]["ended"]
    active = set(doc["faults_active"])
    for fault in venue_faults():
        yield "tc_venue_fault_active", (rid, fault), 1 if fault in active else 0
    updated = _ts(doc["updated_at"])
    if updated is not None:
        yield "tc_venue_stats_timestamp_seconds", (rid,), updated


# Root artifacts (registry name) -> extractor of one file. The kill switch is read as a whole
# (state and history together) by kill_switch_samples.
ROOT_SOURCES: dict[str, Callable[[Path], Iterable[Sample]]] = {
    "dataset_manifest": _dataset,
    "dataset_quality": _dataset_quality,
    "drill_result": _drill,
    "drill_scorecard": _scorecard,
    "drill_matrix": _matrix,
    "venue_stats": _venue_stats,
}
KILL_SWITCH_FILES = ("kill_switch", "kill_switch_events")
