"""The node drills on the real node: every one detects its incident through the real alerting path
(Prometheus rules -> Alertmanager -> `tc alerts receive`), records NautilusTrader's behaviour as
findings, and with detection off (Prometheus without the lab's rules) is reported NOT detected."""

from __future__ import annotations

import json

import pytest

from conftest import run_tc
from opslab import runs
from opslab.drills import matrix
from opslab.drills.node import stack
from opslab.drills.registry import DRILLS

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(stack.missing() is not None, reason=f"node drills need the alerting stack: {stack.missing()}")]
REGISTERED = sorted(name for name, drill in DRILLS.items() if drill.kind == "node")
# a drill whose part is not installed (the warm restarts without redis-server) is skipped by `tc drill run --kind node`, saying why
NODE = [name for name in REGISTERED if not DRILLS[name].missing()]
ENGINE = runs.versions()["nautilus_trader"]  # the engine this test runs on (any profile: make test ENGINE=...)


@pytest.fixture(scope="module")
def detected(request, tmp_path_factory):
    engines = matrix.environments()
    if ENGINE in engines and len(engines) >= 2:  # the session's drill matrix runs them on this engine: read its root
        _, keep, result = request.getfixturevalue("node_drill_matrix")
        return keep / ENGINE / "artifacts", result
    root = tmp_path_factory.mktemp("node-drills") / "artifacts"
    result = run_tc("drill", "run", "--kind", "node", "--jobs", "3", "--json", artifacts=root, timeout=900)
    return root, result


@pytest.fixture(scope="module")
def undetected(tmp_path_factory):
    root = tmp_path_factory.mktemp("node-drills-off") / "artifacts"
    # Four at once: with detection off every drill waits out its whole detection window (about 40 s each).
    result = run_tc("drill", "run", "--kind", "node", "--jobs", "4", "--json", artifacts=root, timeout=900, TC_DRILL_DETECTION="off")
    return root, result


def test_there_are_twenty_four_node_drills_each_with_a_runbook_in_the_docs_nav():
    from conftest import REPO

    assert len(REGISTERED) == 24 and {"node_futures_position_beyond_lookback", "node_futures_restart_with_position",
                                      "node_futures_external_close", "node_futures_flip", "node_fill_lost", "node_partial_fills",
                                      "node_duplicate_reports", "node_ambiguous_submit",
                                      "node_clock_skew", "node_order_rate_limit", "node_user_stream_expiry", "node_cancel_fill_race",
                                      "node_warm_restart", "node_warm_restart_flush", "node_warm_restart_venue_moved", "node_half_open",
                                      "node_orders_rejected"} <= set(REGISTERED)
    nav = (REPO / "mkdocs.yml").read_text()
    for name in REGISTERED:
        assert f"runbooks/{name}.md" in nav and (REPO / "docs" / "runbooks" / f"{name}.md").is_file()


def test_every_node_drill_detects_its_incident_through_a_delivered_alert(detected):
    root, result = detected
    assert result.code == 0, result.out[-3000:] + result.err[-3000:]
    for name in NODE:
        doc = json.loads((root / f"drills/{name}/result.json").read_text())
        assert doc["kind"] == "node" and doc["verdict"] == "pass" and doc["engine_version"] == f"nautilus_trader {ENGINE}"
        assert doc["time_to_detect"]["unit"] == "ms" and doc["time_to_detect"]["value"] is not None
        assert doc["findings"], f"{name}: no finding recorded"
        if name != "node_restart_reconciliation" or doc["evidence"]["reconcile_exit_code"] == 4:
            assert doc["alert"]["alertname"].startswith("Tc") and doc["alert"]["seconds"] < 60, doc["alert"]
            assert doc["time_to_detect"]["value"] == round(doc["alert"]["seconds"] * 1000)
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0
    assert not (root / "runs").exists() and not (root / "state").exists(), "drills run in their own sandboxes"


def test_node_drill_findings_record_what_nautilus_trader_did(detected):
    root, _ = detected

    def doc(name: str) -> dict:
        return json.loads((root / f"drills/{name}/result.json").read_text())

    crash = doc("node_crash")
    assert crash["alert"]["alertname"] == "TcNodeHeartbeatStale" and crash["evidence"]["lifecycle_after_kill"] == "running"
    kill = doc("node_kill_switch")["evidence"]
    assert kill["cancelled_at_halt"] == kill["open_orders_before"] and kill["timeline_seconds"]["venue_cancelled_all"] is not None
    assert kill["timeline_seconds"]["first_order_after_release"] is not None, "trading resumes after the release"
    gap = doc("node_missing_update")["evidence"]
    assert gap["book_sequence_gaps"] > 0 and gap["book_updates_missed"] >= gap["book_sequence_gaps"] * gap["gap_per_message"]
    stale = doc("node_stale_book_connected")
    assert stale["evidence"]["clients_connected_at_detection"]["data"] is True, "the client still says connected"
    soft = stale["evidence"]["auto_halt"]  # the automatic soft halt: REDUCING past its 2 s bound, ACTIVE once updates resume
    assert soft["bounds"] == {"market_data_seconds": 2, "book_seconds": 2} and soft["history_verifies"], soft
    assert soft["age_at_reduce_seconds"] > 2 and 0 < soft["reduced_after_seconds"] < 6, soft
    assert soft["released_after_seconds"] is not None and soft["released_after_seconds"] < 5, soft
    assert {"auto_reduce", "auto_release"} <= set(soft["auto_events"]) and soft["unrecorded"] == []
    assert all(h["reason"].startswith("auto: ") for h in soft["history"])
    assert doc("node_disconnect")["evidence"]["attempts_refused"] > 0
    limited = doc("node_rate_limited_startup")["evidence"]
    assert limited["throttled_429"] > 0
    restart = doc("node_restart_reconciliation")["evidence"]
    assert restart["filled_while_down"] and restart["reconcile_exit_code"] in (0, 4)
    lost = doc("node_fill_lost")
    assert lost["alert"]["alertname"] == "TcNodeFillsBehindVenue"
    ev = lost["evidence"]
    assert ev["seed"] == 28 and ev["schedule"] == [ev["fills_lost"][0]["fill"]] and ev["fills_lost"][0]["seed"] == 28
    assert ev["venue_trades_at_detection"] > ev["node_fills_at_detection"], "detected while the node was behind the venue"
    assert ev["healed"] is (ev["seconds_to_heal"] is not None) and "continuous reconciliation" in lost["findings"][0]
    partial = doc("node_partial_fills")
    assert partial["alert"]["alertname"] in ("TcNodeOrderPartiallyFilled", "TcNodeOrderStateDisagrees")
    ev = partial["evidence"]
    assert ev["seed"] == 28 and ev["split"] == [30, 40, 30] and ev["partial_fills"] and 1 in ev["schedule"]
    assert ev["venue_parts"] and all(parts == 3 for parts in ev["venue_parts"].values()), "each split order filled in three trades"
    assert ev["heartbeats_partially_filled"] > 0, "the node saw an order PARTIALLY_FILLED during the sequence"
    dup = doc("node_duplicate_reports")
    assert dup["alert"]["alertname"] == "TcNodeFillsAheadOfVenue"
    ev = dup["evidence"]
    assert ev["seed"] == 28 and ev["schedule"] == [ev["reports_duplicated"][0]["fill"]] and ev["reports_duplicated"][0]["seed"] == 28
    assert ev["node_fill_reports"] > ev["venue_trades"], "the node received the duplicated fill twice"
    assert ev["node_fills"] == ev["venue_trades"] and ev["counted_twice"] is (ev["node_fill_events"] > ev["venue_trades"])
    ambiguous = doc("node_ambiguous_submit")
    assert ambiguous["alert"]["alertname"] in ("TcNodeOrderUnacknowledged", "TcNodeOrderStateDisagrees", "TcNodeFillsBehindVenue")
    ev = ambiguous["evidence"]
    assert ev["seed"] == 28 and ev["mode"] == "unknown" and ev["schedule"] == [ev["acks_lost"][1]["order"]] and ev["acks_lost"][1]["seed"] == 28
    assert [a["type"] for a in ev["acks_lost"]] == ["LIMIT", "MARKET"]
    assert ev["limit_order"]["venue_orders"] and ev["market_order"]["venue_orders"], "the venue placed the orders whose answers it lost"
    skew = doc("node_clock_skew")
    assert skew["alert"]["alertname"] == "TcNodeRequestsOutsideRecvWindow"
    ev = skew["evidence"]
    assert ev["seed"] == 28 and ev["offset_ms"] == ev["schedule"]["offset_ms"] and ev["rejects_by_code"].get("-1021", 0) > 0
    assert all(r["client_lead_ms"] < -5000 for r in ev["timestamps_rejected"]), "refused: signed more than recvWindow behind the venue"
    limited = doc("node_order_rate_limit")
    assert limited["alert"]["alertname"] == "TcNodeOrderRateLimited"
    ev = limited["evidence"]
    assert ev["seed"] == 28 and ev["limit"] == ev["schedule"]["limit"] and ev["rejects_by_code"].get("-1015", 0) > 0
    assert ev["orders_refused"] and all(r["seed"] == 28 and r["count"] >= r["limit"] for r in ev["orders_refused"])
    assert ev["node_position_at_end"] == ev["venue_position_at_end"], "a refused order is never placed"
    expiry = doc("node_user_stream_expiry")
    assert expiry["alert"]["alertname"] in ("TcNodeUserStreamEnded", "TcNodeFillsBehindVenue")
    ev = expiry["evidence"]
    assert ev["seed"] == 28 and ev["schedule"] == [ev["user_streams_ended"][0]["event"]] and ev["user_streams_ended"][0]["seed"] == 28
    assert ev["ended_with"] == ("listenKeyExpired" if ENGINE == "1.221.0" else "eventStreamTerminated")
    assert ev["user_streams_ended"][0]["subscriptions"] + ev["user_streams_ended"][0]["listen_keys"] >= 1
    soft = ev["auto_halt"]  # REDUCING once an order waited 3 s on the ended stream; ACTIVE only once the stream answers again
    assert soft["bounds"] == {"user_stream_seconds": 3} and soft["history_verifies"] and soft["unrecorded"] == [], soft
    if ENGINE == "1.221.0":  # the dead listen key never answers again: it stays REDUCING
        assert soft["reduced_after_seconds"] is not None and soft["released_after_seconds"] is None and soft["auto_events"] == ["auto_reduce"]
    elif soft["reduced_after_seconds"] is None:  # it subscribed again before any order waited 3 s
        assert ev["resubscribed_seconds"] is not None and soft["auto_events"] == []
    else:
        assert soft["released_after_seconds"] is not None and soft["auto_events"][-1] == "auto_release"
    half = doc("node_half_open")
    assert half["alert"]["alertname"] == "TcNodeMarketDataStale"
    ev = half["evidence"]
    assert ev["half_open_connections"] >= 2, "market data and the user stream (or the WebSocket API session) went half-open"
    assert ev["clients_connected_at_detection"]["data"] is True, "the client still says connected"
    assert ev["max_seconds_since_market_data"] > 3 and ev["watch_seconds"] == 20, ev  # the data gap passed the spec's 3 s bound
    rejected = doc("node_orders_rejected")
    assert rejected["alert"]["alertname"] == "TcNodeOrdersRejected"
    ev = rejected["evidence"]
    assert ev["seed"] == 28 and ev["code"] == -2010 and len(ev["schedule"]) >= 3 and all(r["seed"] == 28 for r in ev["orders_rejected"])
    assert ev["node_rejected_with_code"] >= 3 and ev["node_status_of_rejected"] == ["REJECTED"], "a refused order is REJECTED in the node"
    assert ev["node_position"] == ev["venue_position"], "a refused order is never placed"
    race = doc("node_cancel_fill_race")
    assert race["alert"]["alertname"] in ("TcNodeCancelRejected", "TcNodeOrderStateDisagrees")
    ev = race["evidence"]
    assert ev["seed"] == 28 and ev["schedule"] == [ev["cancels_raced"][0]["cancel"]] and ev["cancels_raced"][0]["seed"] == 28
    assert ev["venue_status"] == ["FILLED"] and ev["venue_trades_of_order"] == 1, "the fill won the race at the venue"
    assert ev["phantom_cancel"] is (ev["node_status"] == ["CANCELED"])
    # USD-M Futures: the orders NautilusTrader holds but no strategy placed, and node vs venue positions (issue 32 item 4)
    external = doc("node_futures_external_close")
    assert external["alert"]["alertname"] == "TcNodeExternalOrders"
    ev = external["evidence"]
    assert ev["other_client_order"]["clientOrderId"] == "other-client-close-1" and sum(ev["external_orders"].values()) >= 1
    assert [(o["side"], o["status"]) for o in ev["foreign_orders"]] == [("SELL", "FILLED")], "the other client's fill, as EXTERNAL"
    assert ev["node_position"] is None and ev["venue_position"] is None and ev["reconcile_exit_code"] == 0, "both flat, and agree"
    old = doc("node_futures_position_beyond_lookback")
    assert old["alert"]["alertname"] in ("TcNodeExternalOrders", "TcReconciliationMismatch")
    ev = old["evidence"]
    assert ev["opened_hours_ago"] == 48 and ev["records_moved"] >= 3
    made_up = [o for o in ev["foreign_orders"] if o["status"] == "FILLED"]
    assert [(o["side"], o["quantity"]) for o in made_up] == [("BUY", "0.030")], "reconciliation made up one fill for the old long"
    assert ev["venue_position"]["quantity"] == "0.04" and (ev["node_position"] == ev["venue_position"]) is (ev["reconcile_exit_code"] == 0)
    restart = doc("node_futures_restart_with_position")
    assert restart["alert"]["alertname"] in ("TcNodeExternalOrders", "TcReconciliationMismatch")
    ev = restart["evidence"]
    assert ev["held_at_kill"] == "0.010" and len(ev["resting_at_kill"]) == 1
    assert {(o["side"], o["status"]) for o in ev["foreign_orders"]} >= {("BUY", "FILLED")}, "the long came back as no strategy's"
    assert (ev["node_position"] == ev["venue_position"]) is (ev["reconcile_exit_code"] == 0)
    flip = doc("node_futures_flip")
    assert flip["alert"]["alertname"] == "TcNodePositionFlipped"
    ev = flip["evidence"]
    assert ev["position_flips"] >= 1 and ev["flip_fill"]["side"] == "SELL" and ev["flip_fill"]["quantity"] == "0.02"
    assert ev["reconcile_exit_code"] == 0 and ev["node_position"] == ev["venue_position"]
    for name in ("node_warm_restart", "node_warm_restart_flush", "node_warm_restart_venue_moved"):
        if name not in NODE:
            continue
        warm = doc(name)
        assert warm["alert"]["alertname"] == "TcNodeCacheDbDisagreement", (name, warm["observed_detection"])
        ev = warm["evidence"]
        at_kill = ev["at_kill"]
        assert at_kill["venue_open_orders"] and at_kill["venue_trades"] >= 1, "killed holding a resting order and a position"
        assert at_kill["cache_db"]["orders_open"] and at_kill["cache_db"]["positions_open"], "both were in the cache database at the kill"
        assert set(ev["comparison"]) == {"open_orders", "position_quantity"} and ev["disagree"]
        assert all(set(item) == {"node", "cache_db", "venue", "agree"} for item in ev["comparison"].values())
        assert ev["cache_db_before"]["keys"] == at_kill["cache_db"]["keys"], "the restart found the database as the killed node left it"
        flushed = name == "node_warm_restart_flush"
        loaded = ev["reloaded"]["orders"]
        assert (loaded == 0) if flushed and ENGINE != "1.221.0" else loaded >= 2, ("what NautilusTrader loaded", ev["reloaded"])
        if name == "node_warm_restart_venue_moved":
            assert ev["filled_while_down"] == at_kill["venue_open_orders"]
        assert any("reloaded" in f or "loaded" in f for f in warm["findings"]) and any("agree" in f.lower() for f in warm["findings"])


def test_the_scorecard_lists_node_drills_with_time_to_detect_and_findings(detected, tmp_path):
    import shutil

    root = tmp_path / "artifacts"  # a copy: the lab drills below must not join the shared root the matrix tests read
    shutil.copytree(detected[0], root, symlinks=True)
    card = json.loads((root / "drills/scorecard.json").read_text())
    rows = {row["drill"]: row for row in card["drills"]}
    assert sorted(rows) == NODE and card["passed"] == len(NODE)
    assert all(row["kind"] == "node" and row["time_to_detect"]["value"] > 0 and row["findings"] for row in rows.values())
    page = (root / "drills/scorecard.html").read_text()
    assert "What NautilusTrader did" in page and "node_restart_reconciliation" in page and "<svg" in page
    lab = run_tc("drill", "run", "stale_data", "--json", artifacts=root)
    assert lab.code == 0
    both = run_tc("drill", "run", "--all", "--json", artifacts=root, timeout=600)  # the lab drills join the node drills' rows
    card = json.loads((root / "drills/scorecard.json").read_text())
    assert both.code == 0 and {row["kind"] for row in card["drills"]} == {"lab", "node"} and card["total"] == len(DRILLS)


@pytest.mark.parametrize("name", NODE)
def test_each_node_drill_fails_with_detection_off(undetected, name):
    root, result = undetected
    assert result.code == 4
    doc = json.loads((root / f"drills/{name}/result.json").read_text())
    assert doc["detected"] is False and doc["verdict"] == "fail" and doc["detection_enabled"] is False and doc["alert"] is None
