"""The metric catalog: every family the exporter serves (name, type, labels, help, source artifact).

Counter families for runs come from the properties of schemas/metrics.schema.json, so a new counter
appears without code. docs/reference/metrics.md is generated from this list.
"""

from __future__ import annotations

from dataclasses import dataclass

from opslab.contracts import load_schema

@dataclass(frozen=True)
class Family:
    """One metric family: its type, label names, help text and source artifact."""

    name: str
    kind: str  # gauge | counter
    labels: tuple[str, ...]
    help: str
    source: str


def _counter_families() -> list[Family]:
    props = load_schema("metrics")["properties"]["counters"]["properties"]
    return [Family(f"tc_run_{name}", "counter", ("run_id",), props[name]["description"], "runs/<run_id>/metrics.json")
            for name in sorted(props)]


FAMILIES: list[Family] = [
    Family("tc_run_info", "gauge", ("run_id", "engine_kind", "scenario", "strategy"), "1 for every run; identity labels.", "runs/<run_id>/metadata.json"),
    Family("tc_run_status", "gauge", ("run_id", "status"), "1 for the run's current status (initialized, running, completed, failed, blocked, stopped).", "runs/<run_id>/metadata.json"),
    Family("tc_run_updated_timestamp_seconds", "gauge", ("run_id",), "When the run's metadata last changed (Unix seconds).", "runs/<run_id>/metadata.json"),
    Family("tc_run_dataset_last_bar_timestamp_seconds", "gauge", ("run_id",), "Close time of the run dataset's last bar (Unix seconds).", "runs/<run_id>/metadata.json"),
    Family("tc_run_balance", "gauge", ("run_id", "currency"), "Final venue balance (total) per currency.", "runs/<run_id>/metrics.json"),
    *_counter_families(),
    Family("tc_run_kill_switch_engaged_at_start", "gauge", ("run_id",), "1 when the kill switch was engaged the last time the run looked.", "runs/<run_id>/metadata.json"),
    Family("tc_paper_steps_done", "gauge", ("run_id", "state"), "Paper lifecycle steps done, labelled with the lifecycle state.", "runs/<run_id>/paper/lifecycle.json"),
    Family("tc_paper_recoveries", "gauge", ("run_id",), "Times an unfinished paper lifecycle was recovered after a crash.", "runs/<run_id>/paper/lifecycle.json"),
    Family("tc_reconciliation_checks", "gauge", ("run_id",), "Checks evaluated by the last reconciliation.", "runs/<run_id>/reconciliation.json"),
    Family("tc_reconciliation_mismatches", "gauge", ("run_id",), "Checks that did not match in the last reconciliation.", "runs/<run_id>/reconciliation.json"),
    Family("tc_connectivity_ready", "gauge", ("run_id",), "1 when every credential placeholder is set.", "runs/<run_id>/connectivity_readiness.json"),
    Family("tc_connectivity_missing_placeholders", "gauge", ("run_id",), "Credential placeholders unset or empty.", "runs/<run_id>/connectivity_readiness.json"),
    Family("tc_connectivity_probe_up", "gauge", ("run_id", "target"), "1 when the last recorded probe was up.", "runs/<run_id>/connectivity_probe.json"),
    Family("tc_connectivity_probe_latency_seconds", "gauge", ("run_id", "target"), "Latency of the last recorded up probe.", "runs/<run_id>/connectivity_probe.json"),
    Family("tc_connectivity_probe_http_status", "gauge", ("run_id", "target"), "HTTP status of the last recorded probe (0 when none).", "runs/<run_id>/connectivity_probe.json"),
    Family("tc_artifacts_verification_problems", "gauge", ("run_id",), "Problems `tc artifacts verify` finds in the run (0 when it verifies).", "runs/<run_id>/*"),
    Family("tc_dataset_rows", "gauge", ("dataset_id",), "Bars in a prepared dataset.", "datasets/<dataset_id>/manifest.json"),
    Family("tc_dataset_info", "gauge", ("dataset_id", "fingerprint"), "1 per dataset; its fingerprint as a label.", "datasets/<dataset_id>/manifest.json"),
    Family("tc_kill_switch_engaged", "gauge", (), "1 when the kill switch is engaged or its state is unreadable (fail closed), else 0.", "state/kill_switch.json"),
    Family("tc_kill_switch_state_valid", "gauge", (), "0 when the kill switch state file is unreadable or invalid.", "state/kill_switch.json"),
    Family("tc_kill_switch_events", "counter", (), "Engage and release events in the switch's history.", "state/kill_switch_events.jsonl"),
    Family("tc_drill_detected", "gauge", ("drill",), "1 when the drill's failure was detected (verdict pass).", "drills/<drill>/result.json"),
    Family("tc_drill_finished_timestamp_seconds", "gauge", ("drill",), "When the drill last finished (Unix seconds).", "drills/<drill>/result.json"),
    Family("tc_drills_passed", "gauge", (), "Drills that passed in the last `tc drill run --all`.", "drills/scorecard.json"),
    Family("tc_drills_run", "gauge", (), "Drills in the last `tc drill run --all`.", "drills/scorecard.json"),
    Family("tc_exporter_scrape_duration_seconds", "gauge", (), "How long this scrape took to collect.", "(exporter)"),
    Family("tc_exporter_artifact_errors", "counter", ("kind",), "Artifacts that could not be read or parsed, since the exporter started.", "(exporter)"),
    Family("tc_exporter_scrapes", "counter", (), "Scrapes served since the exporter started.", "(exporter)"),
]
BY_NAME = {f.name: f for f in FAMILIES}


ARTIFACT_FAMILIES = [f.name for f in FAMILIES if f.source != "(exporter)"]
EXPORTER_FAMILIES = [f.name for f in FAMILIES if f.source == "(exporter)"]
