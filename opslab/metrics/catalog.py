"""The metric catalog: every family the exporter serves (name, type, labels, help, source, scope).

Scopes bound the series: `run` families carry a run_id label and are served only for the newest
runs (TC_METRICS_PER_RUN, default 50) and for runs that are running or failed; `aggregate` families
summarize every run; `root` families come from datasets, state and drills (bounded by what exists:
datasets and drills are few); `exporter` families describe the exporter itself. Per-run counter
families come from the properties of schemas/metrics.schema.json. docs/reference/metrics.md is
generated from this list (scripts/gen_metrics_docs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from opslab import contracts
from opslab.contracts import load_schema

PER_RUN_DEFAULT = 50


@dataclass(frozen=True)
class Family:
    """One metric family: its type, label names, help text, source artifact and scope."""

    name: str
    kind: str  # gauge | counter
    labels: tuple[str, ...]
    help: str
    source: str
    scope: str  # run | aggregate | root | exporter

    @property
    def exposed(self) -> str:
        """The sample name: counters end in _total."""
        return self.name + "_total" if self.kind == "counter" else self.name


def counter_properties() -> dict[str, dict]:
    """The run counters declared in schemas/metrics.schema.json (name -> property)."""
    return load_schema("metrics")["properties"]["counters"]["properties"]


def _per_run_counters() -> list[Family]:
    props = counter_properties()
    return [Family(f"tc_run_{name}", props[name].get("x-metric-type", "counter"), ("run_id",), props[name]["description"],
                   _run("metrics"), "run") for name in sorted(props)]


def _aggregate_counters() -> list[Family]:
    props = counter_properties()
    return [Family(f"tc_runs_{name}", "counter", (), f"Sum over every run: {props[name]['description']}", _every_run("metrics"), "aggregate")
            for name in sorted(props) if props[name].get("x-metric-type", "counter") == "counter"]


def _run(name: str) -> str:
    return "runs/<run_id>/" + contracts.artifact(name).path


def _every_run(name: str) -> str:
    return "runs/*/" + contracts.artifact(name).path


def _root(name: str) -> str:
    return contracts.artifact(name).path


FAMILIES: list[Family] = [
    Family("tc_build_info", "gauge", ("version", "nautilus_trader", "python"),
           "1; the versions of the exporter's tc, NautilusTrader and Python.", "(exporter)", "exporter"),
    # per run (bounded: newest runs, and running or failed ones)
    Family("tc_run_info", "gauge", ("run_id", "engine_kind", "scenario", "strategy"), "1 for every run shown; identity labels.", _run("metadata"), "run"),
    Family("tc_run_status", "gauge", ("run_id", "status"),
           "1 for the run's current status (initialized, running, completed, failed, blocked, stopped).", _run("metadata"), "run"),
    Family("tc_run_updated_timestamp_seconds", "gauge", ("run_id",), "When the run's metadata last changed (Unix seconds).", _run("metadata"), "run"),
    Family("tc_run_dataset_last_bar_timestamp_seconds", "gauge", ("run_id",),
           "Close time of the run dataset's last bar (Unix seconds).", _run("metadata"), "run"),
    Family("tc_run_balance", "gauge", ("run_id", "currency"), "Final venue balance (total) per currency.", _run("metrics"), "run"),
    *_per_run_counters(),
    Family("tc_run_kill_switch_engaged_at_start", "gauge", ("run_id",),
           "1 when the kill switch was engaged the last time the run looked.", _run("metadata"), "run"),
    Family("tc_paper_steps_done", "gauge", ("run_id", "state"),
           "Paper lifecycle steps done, labelled with the lifecycle state.", _run("paper_lifecycle"), "run"),
    Family("tc_paper_recoveries", "counter", ("run_id",), "Times an unfinished paper lifecycle was recovered after a crash.", _run("paper_lifecycle"), "run"),
    Family("tc_reconciliation_checks", "gauge", ("run_id",), "Checks evaluated by the latest reconciliation.", _run("reconciliation"), "run"),
    Family("tc_reconciliation_mismatches", "gauge", ("run_id",), "Checks that did not match in the latest reconciliation.", _run("reconciliation"), "run"),
    Family("tc_reconciliation_timestamp_seconds", "gauge", ("run_id",),
           "When the latest reconciliation was recorded (Unix seconds).", _run("reconciliation"), "run"),
    Family("tc_connectivity_ready", "gauge", ("run_id",), "1 when every credential placeholder is set.", _run("connectivity_readiness"), "run"),
    Family("tc_connectivity_missing_placeholders", "gauge", ("run_id",), "Credential placeholders unset or empty.", _run("connectivity_readiness"), "run"),
    Family("tc_connectivity_probe_up", "gauge", ("run_id", "target"), "1 when the latest probe was up.", _run("connectivity_probe"), "run"),
    Family("tc_connectivity_probe_latency_seconds", "gauge", ("run_id", "target"),
           "Latency of the latest probe, when it was up.", _run("connectivity_probe"), "run"),
    Family("tc_connectivity_probe_http_status", "gauge", ("run_id", "target"),
           "HTTP status of the latest probe (0 when none).", _run("connectivity_probe"), "run"),
    Family("tc_connectivity_probe_timestamp_seconds", "gauge", ("run_id", "target"),
           "When the latest probe was made (Unix seconds).", _run("connectivity_probe"), "run"),
    Family("tc_artifacts_verification_problems", "gauge", ("run_id",),
           "Problems found in the run's files without reading them: links, temp and unknown files, files added, missing, "
           "or changed after tc wrote the manifest (`tc artifacts verify` rechecks digests, seals and schemas).",
           "runs/<run_id>/*", "run"),
    Family("tc_node_up", "gauge", ("run_id",), "1 while the live node is connected, reconciled, running or halted (its lifecycle state).",
           _run("node_lifecycle"), "run"),
    Family("tc_node_lifecycle_state", "gauge", ("run_id", "state"), "1 for the live node's lifecycle state.", _run("node_lifecycle"), "run"),
    Family("tc_node_halts", "counter", ("run_id",), "Times the kill switch halted the live node.", _run("node_lifecycle"), "run"),
    Family("tc_node_auto_halts", "counter", ("run_id",),
           "Times the node moved itself to REDUCING because a stream went stale (spec engine.node.auto_halt; absent without it).",
           _run("node_lifecycle"), "run"),
    Family("tc_node_heartbeat_timestamp_seconds", "gauge", ("run_id",), "When the node's ops actor last wrote a heartbeat (Unix seconds).",
           _run("node_heartbeat"), "run"),
    Family("tc_node_trading_halted", "gauge", ("run_id",), "1 when the node's RiskEngine trading state is HALTED (at the last heartbeat).",
           _run("node_heartbeat"), "run"),
    Family("tc_node_trading_reducing", "gauge", ("run_id",),
           "1 when the node's RiskEngine trading state is REDUCING (at the last heartbeat): its automatic soft halt (a stale stream).",
           _run("node_heartbeat"), "run"),
    Family("tc_node_stream_age_seconds", "gauge", ("run_id", "stream"),
           "Receive age by stream (market_data, book, user_stream) at the last heartbeat; the user stream's counts only while an "
           "order waits on it (docs/safety.md).", _run("node_heartbeat"), "run"),
    Family("tc_node_seconds_since_market_data", "gauge", ("run_id",), "Seconds from the node's last trade, quote or bar to its last heartbeat.",
           _run("node_heartbeat"), "run"),
    Family("tc_node_clients_connected", "gauge", ("run_id", "client"), "1 when the node's Binance data or execution client reports connected.",
           _run("node_heartbeat"), "run"),
    Family("tc_node_cache_db_keys", "gauge", ("run_id", "collection"),
           "Keys in the node's cache database by NautilusTrader's collection (orders, positions, accounts, index:orders_open, ...), when "
           "the node last stopped (or, while it runs, when it started).", _run("node_cache_db"), "run"),
    Family("tc_node_cache_db_disagreements", "gauge", ("run_id",),
           "Of the open orders and the net position, how many the node, its cache database and the venue did not all agree on when "
           "the node last stopped (node/cache_db.json comparison); TcNodeCacheDbDisagreement fires above 0.", _run("node_cache_db"), "run"),
    Family("tc_node_open_orders", "gauge", ("run_id",), "Orders open in the node's cache (at the last heartbeat).", _run("node_heartbeat"), "run"),
    Family("tc_node_heartbeat_interval_seconds", "gauge", ("run_id",), "The node's heartbeat interval (the spec's engine.node.heartbeat_seconds).",
           _run("node_lifecycle"), "run"),
    Family("tc_node_market_data_stale_after_seconds", "gauge", ("run_id",),
           "Market data older than this is stale for the node (the spec's engine.node.market_data_stale_seconds).", _run("node_lifecycle"), "run"),
    Family("tc_node_book_sequence_gaps", "counter", ("run_id",),
           "Order book delta messages whose update id skipped over missed updates, since the node started (at the last heartbeat).",
           _run("node_heartbeat"), "run"),
    Family("tc_node_fills", "gauge", ("run_id",),
           "Fills the node holds for its instrument (distinct trade ids in its cache, at the last heartbeat); TcNodeFillsBehindVenue "
           "compares them with the venue's trades.", _run("node_heartbeat"), "run"),
    Family("tc_node_fill_events", "gauge", ("run_id",),
           "OrderFilled events the engine published to the node's strategies since it started, duplicates included (at the last "
           "heartbeat); TcNodeFillsAheadOfVenue compares them with the venue's trades.", _run("node_heartbeat"), "run"),
    Family("tc_node_fill_reports", "gauge", ("run_id",),
           "OrderFilled events the execution client sent the node's engine since it started, duplicates included, before the engine "
           "applies them (at the last heartbeat); TcNodeFillsAheadOfVenue compares them with the venue's trades.", _run("node_heartbeat"), "run"),
    Family("tc_node_orders_partially_filled", "gauge", ("run_id",),
           "Open orders PARTIALLY_FILLED in the node's cache (at the last heartbeat).", _run("node_heartbeat"), "run"),
    Family("tc_node_orders_unacknowledged", "gauge", ("run_id",),
           "Orders SUBMITTED in the node's cache: sent to the venue, not yet accepted, rejected or filled (at the last heartbeat).",
           _run("node_heartbeat"), "run"),
    Family("tc_node_oldest_unacknowledged_order_seconds", "gauge", ("run_id",),
           "How long the node's oldest SUBMITTED order has waited for the venue's answer, 0 when none (at the last heartbeat); "
           "TcNodeOrderUnacknowledged compares it with a bound.", _run("node_heartbeat"), "run"),
    Family("tc_node_orders_rejected", "gauge", ("run_id", "code"),
           "OrderRejected events of the node's instrument since it started, by the Binance error code in the reason (\"none\" "
           "without one; at the last heartbeat).", _run("node_heartbeat"), "run"),
    Family("tc_node_position_quantity", "gauge", ("run_id",),
           "The node's net position in its instrument, signed (negative: short; at the last heartbeat).", _run("node_heartbeat"), "run"),
    Family("tc_node_position_flips", "gauge", ("run_id",),
           "Fills that took the node's net position through zero in one go since it started (at the last heartbeat); "
           "TcNodePositionFlipped.", _run("node_heartbeat"), "run"),
    Family("tc_node_external_orders", "gauge", ("run_id", "origin"),
           "Orders of the node's instrument in its cache that none of its strategies placed, by the strategy id NautilusTrader gave "
           "them (EXTERNAL, INTERNAL-DIFF; at the last heartbeat); TcNodeExternalOrders.", _run("node_heartbeat"), "run"),
    # every run, summarized
    Family("tc_runs", "gauge", ("status", "engine_kind"),
           "Runs under the root, by status and engine kind (every run, shown per run or not).", _every_run("metadata"), "aggregate"),
    *_aggregate_counters(),
    Family("tc_runs_verification_problems", "gauge", (), "Verification problems summed over every run.", "runs/*", "aggregate"),
    Family("tc_runs_reconciliation_mismatches", "gauge", (),
           "Mismatches of the latest reconciliation, summed over every run.", _every_run("reconciliation"), "aggregate"),
    Family("tc_runs_probes_down", "gauge", (), "Runs whose latest probe was down.", _every_run("connectivity_probe"), "aggregate"),
    # outside runs
    Family("tc_dataset_rows", "gauge", ("dataset_id",), "Bars in a prepared dataset.", _root("dataset_manifest"), "root"),
    Family("tc_dataset_quality_passed", "gauge", ("dataset_id",), "1 when every data quality check of the dataset passed its threshold.",
           _root("dataset_quality"), "root"),
    Family("tc_dataset_quality_failed_checks", "gauge", ("dataset_id",), "Data quality checks of the dataset that failed their threshold.",
           _root("dataset_quality"), "root"),
    Family("tc_dataset_info", "gauge", ("dataset_id", "fingerprint"), "1 per dataset; its fingerprint as a label.", _root("dataset_manifest"), "root"),
    Family("tc_kill_switch_engaged", "gauge", (),
           "1 when the kill switch is engaged or cannot be trusted (fail closed), else 0.", _root("kill_switch"), "root"),
    Family("tc_kill_switch_state_valid", "gauge", (),
           "0 when the kill switch state cannot be trusted (unreadable, or disagrees with its history).", _root("kill_switch"), "root"),
    Family("tc_kill_switch_events", "counter", (), "Engage and release events in the switch's history.", _root("kill_switch_events"), "root"),
    Family("tc_drill_detected", "gauge", ("drill",),
           "1 when the drill's failure was detected in its latest run (verdict pass).", _root("drill_result"), "root"),
    Family("tc_drill_last_run_timestamp_seconds", "gauge", ("drill",),
           "When the drill last ran (Unix seconds); moves on every run.", _root("drill_result"), "root"),
    Family("tc_drills", "gauge", ("outcome",), "Drills by the outcome of their latest run (pass, fail).", _root("drill_result"), "root"),
    Family("tc_drills_passed", "gauge", (), "Drills that passed in the last `tc drill run --all`.", _root("drill_scorecard"), "root"),
    Family("tc_drills_run", "gauge", (), "Drills in the last `tc drill run --all`.", _root("drill_scorecard"), "root"),
    Family("tc_drill_matrix_detected", "gauge", ("drill", "engine"),
           "1 when the node drill detected its failure on that NautilusTrader release in the latest `tc drill matrix`, 0 when not.",
           _root("drill_matrix"), "root"),
    Family("tc_drill_matrix_changed", "gauge", ("drill",),
           "1 when the drill's verdict, alert or findings differ between engines in the latest `tc drill matrix`.", _root("drill_matrix"), "root"),
    # the exporter itself
    Family("tc_exporter_warming", "gauge", (),
           "1 while the exporter is still reading the artifacts after a start (what it serves is incomplete).", "(exporter)", "exporter"),
    Family("tc_exporter_runs", "gauge", ("shown",),
           "Runs the exporter knows, by whether their per-run families are served (per_run) or only summarized (aggregate_only).", "(exporter)", "exporter"),
    Family("tc_exporter_scrape_duration_seconds", "gauge", (), "How long this scrape took to collect.", "(exporter)", "exporter"),
    Family("tc_exporter_artifact_errors", "counter", ("kind",),
           "Artifacts that could not be read or parsed, since the exporter started.", "(exporter)", "exporter"),
    Family("tc_exporter_scrapes", "counter", (), "Scrapes served since the exporter started.", "(exporter)", "exporter"),
    # the Binance-compatible venue (one per run id it serves; its counters restart with the venue)
    Family("tc_venue_requests", "counter", ("run_id", "outcome"),
           "Venue REST requests and WebSocket handshakes by outcome (served, throttled = 429, banned = 418, dropped, errors = 503).",
           _root("venue_stats"), "root"),
    Family("tc_venue_depth_snapshots", "counter", ("run_id",), "Order book snapshots (GET /api/v3/depth) the venue answered.",
           _root("venue_stats"), "root"),
    Family("tc_venue_ws_connections", "counter", ("run_id",), "WebSocket connections the venue accepted.", _root("venue_stats"), "root"),
    Family("tc_venue_ws_connections_refused", "counter", ("run_id",), "WebSocket handshakes the venue refused (a fault or an unknown stream).",
           _root("venue_stats"), "root"),
    Family("tc_venue_ws_closed_by_fault", "counter", ("run_id",), "Open WebSocket connections the venue closed because of a drop or error_5xx fault.",
           _root("venue_stats"), "root"),
    Family("tc_venue_ws_subscribe_commands", "counter", ("run_id",), "WebSocket SUBSCRIBE commands the venue received.", _root("venue_stats"), "root"),
    Family("tc_venue_ws_last_subscribe_timestamp_seconds", "gauge", ("run_id",), "When the venue received the last SUBSCRIBE command (Unix seconds).",
           _root("venue_stats"), "root"),
    Family("tc_venue_market_messages", "counter", ("run_id", "outcome"),
           "Market stream events by outcome: published, or suppressed by the silent_market fault.", _root("venue_stats"), "root"),
    Family("tc_venue_account_trades", "counter", ("run_id",),
           "Trades (fills) in the venue's record for its account, since its state began (what myTrades shows).", _root("venue_stats"), "root"),
    Family("tc_venue_fill_reports_withheld", "counter", ("run_id",),
           "Fills whose executionReport the fill_lost fault withheld from the user data stream, since the venue started.", _root("venue_stats"), "root"),
    Family("tc_venue_fill_reports_duplicated", "counter", ("run_id",),
           "Fills whose executionReport the duplicate_reports fault sent twice, since the venue started.", _root("venue_stats"), "root"),
    Family("tc_venue_open_orders", "gauge", ("run_id",),
           "The account's open orders at the venue (NEW or PARTIALLY_FILLED); TcNodeOrderStateDisagrees compares them with the node's.",
           _root("venue_stats"), "root"),
    Family("tc_venue_orders_partially_filled", "gauge", ("run_id",), "The account's open orders PARTIALLY_FILLED at the venue.",
           _root("venue_stats"), "root"),
    Family("tc_venue_rejects", "counter", ("run_id", "code"),
           "Requests the venue refused, by Binance error code (REST and WebSocket API), since it started; the codes that matter "
           "at 0 until seen. TcNodeRequestsOutsideRecvWindow watches -1021.", _root("venue_stats"), "root"),
    Family("tc_venue_clock_offset_seconds", "gauge", ("run_id",),
           "The venue clock's offset from the host's (the clock_skew fault; 0 without it).", _root("venue_stats"), "root"),
    Family("tc_venue_user_streams_active", "gauge", ("run_id",),
           "User data streams the venue delivers now (listen keys on a stream connection, WebSocket API subscriptions).",
           _root("venue_stats"), "root"),
    Family("tc_venue_user_streams_ended", "counter", ("run_id",),
           "User data streams (listen keys, WebSocket API subscriptions) the venue ended (the user_stream_expiry fault), since it "
           "started; TcNodeUserStreamEnded watches it.", _root("venue_stats"), "root"),
    Family("tc_venue_fault_active", "gauge", ("run_id", "fault"), "1 for each venue fault in effect, 0 for the others.", _root("venue_stats"), "root"),
    Family("tc_venue_stats_timestamp_seconds", "gauge", ("run_id",), "When the venue last wrote its statistics (Unix seconds).",
           _root("venue_stats"), "root"),
]
BY_NAME = {f.name: f for f in FAMILIES}
RUN_FAMILIES = [f.name for f in FAMILIES if f.scope == "run"]
AGGREGATE_FAMILIES = [f.name for f in FAMILIES if f.scope == "aggregate"]
ROOT_FAMILIES = [f.name for f in FAMILIES if f.scope == "root"]
EXPORTER_FAMILIES = [f.name for f in FAMILIES if f.scope == "exporter"]
ARTIFACT_FAMILIES = RUN_FAMILIES + AGGREGATE_FAMILIES + ROOT_FAMILIES
