"""Drill kinds on the command line: listing and choosing lab or node drills, --check writing nothing,
bad choices refused with one line, and the scorecard page showing node findings."""

from __future__ import annotations

import json

from conftest import REPO
from opslab import contracts
from opslab.report import html
from opslab.drills.node import stack
from opslab.drills.registry import DRILLS


def test_there_are_seven_lab_and_twenty_node_drills_each_with_a_runbook_page():
    kinds = {kind: sorted(n for n, d in DRILLS.items() if d.kind == kind) for kind in ("lab", "node")}
    assert len(kinds["lab"]) == 7 and len(kinds["node"]) == 24 and len(DRILLS) == len(kinds["lab"]) + len(kinds["node"])
    assert {"node_fill_lost", "node_partial_fills", "node_duplicate_reports", "node_ambiguous_submit", "node_clock_skew",
            "node_order_rate_limit", "node_user_stream_expiry", "node_cancel_fill_race", "node_warm_restart", "node_warm_restart_flush",
            "node_warm_restart_venue_moved", "node_half_open", "node_orders_rejected"} <= set(kinds["node"])
    docs = REPO / "docs"
    assert all((docs / d.runbook).is_file() for d in DRILLS.values())


def test_list_filters_by_kind(lab):
    listed = lab("drill", "list", "--kind", "node", "--json")
    rows = listed.json()["data"]["drills"]
    node = [n for n, d in DRILLS.items() if d.kind == "node"]
    assert listed.code == 0 and len(rows) == len(node) and {r["kind"] for r in rows} == {"node"}
    assert {r["kind"] for r in lab("drill", "list", "--json").json()["data"]["drills"]} == {"lab", "node"}


def test_run_by_kind_with_check_writes_nothing(lab):
    done = lab("drill", "run", "--kind", "node", "--check", "--json")
    node = [n for n, d in DRILLS.items() if d.kind == "node"]
    assert done.code == 0 and done.json()["status"] == "changed" and f"{len(node)} node drill(s)" in done.json()["summary"]
    assert not lab.root.exists() or not any(lab.root.rglob("*"))


def test_bad_kind_and_name_plus_kind_are_refused_with_one_line(lab):
    bad = lab("drill", "run", "--kind", "nodes")
    assert bad.code == 2 and "invalid choice: 'nodes'" in bad.err and "Traceback" not in bad.err
    both = lab("drill", "run", "mismatch", "--kind", "node")
    assert both.code == 2 and len(both.err.strip().splitlines()) == 1 and "give one drill NAME, or --all / --kind KIND" in both.err


def test_the_alert_stack_says_why_it_cannot_run(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "prometheus" in (stack.missing() or "")


def test_scorecard_page_lists_node_findings_escaped(tmp_path):
    drills = tmp_path / "drills"
    row = {"drill": "node_crash", "kind": "node", "verdict": "pass", "detected": True, "runbook": "runbooks/node_crash.md",
           "time_to_detect": {"value": 6900, "unit": "ms"}, "findings": ["the lifecycle stays <running>"]}
    card = {"schema_version": 1, "total": 1, "passed": 1, "failed": 0, "finished_at": "2024-01-01T00:00:00Z", "drills": [row]}
    assert contracts.errors_for("drill_scorecard", card, "scorecard.json") == []
    drills.mkdir()
    (drills / "scorecard.json").write_text(json.dumps(card))
    page = html.render_scorecard(drills)
    assert "What NautilusTrader did" in page and "the lifecycle stays &lt;running&gt;" in page and "<td>node</td>" in page


def test_a_stored_result_that_does_not_validate_is_left_off_the_scorecard(tmp_path, monkeypatch):
    from opslab.drills import runner

    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path))
    path = tmp_path / "drills" / "node_crash" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"drill": "node_crash", "verdict": "pass"}')  # hand-edited: required fields gone
    assert runner.stored_result(path) is None and runner.stored_result(path.parent.parent / "node_kill_switch" / "result.json") is None
    row = {"schema_version": 1, "drill": "node_crash", "fault_injected": "f", "expected_detection": "e", "observed_detection": "o",
           "detected": True, "time_to_detect": {"value": 1, "unit": "ms"}, "runbook": "runbooks/node_crash.md", "verdict": "pass",
           "evidence": {}, "finished_at": "2024-01-01T00:00:00Z", "kind": "node", "findings": ["f"]}
    path.write_text(json.dumps(row))
    assert runner.stored_result(path) == row
    assert runner._scorecard([row])["drills"][0] == {"drill": "node_crash", "kind": "node", "verdict": "pass", "detected": True,
                                                    "runbook": "runbooks/node_crash.md", "time_to_detect": {"value": 1, "unit": "ms"},
                                                    "findings": ["f"]}


def _timed_drill(name: str, log: list, lock, seconds: float = 0.3, boom: bool = False):
    """A registered-shape lab drill whose execute records when it ran (start, end) and how many ran beside it."""
    import time

    from opslab.drills.base import Drill, Observation

    def execute(ctx):
        with lock:
            log.append(("start", name, time.monotonic()))
        time.sleep(seconds)
        with lock:
            log.append(("end", name, time.monotonic()))
        if boom:
            raise RuntimeError(f"{name} broke")
        assert ctx.sandbox.is_dir() and ctx.name == name
        return Observation(True, "seen", 1, "ms")

    return Drill(name, "s", "f", "e", execute)


def _most_at_once(log: list) -> int:
    running = most = 0
    for event, _, _ in sorted(log, key=lambda e: e[2]):
        running += 1 if event == "start" else -1
        most = max(most, running)
    return most


def test_jobs_run_that_many_drills_at_once_and_keep_the_registry_order():
    import threading

    from opslab.drills import runner

    log, lock = [], threading.Lock()
    chosen = [_timed_drill(f"d{i}", log, lock) for i in range(5)]
    events = []
    results = runner._run_each(chosen, 2, lambda i, n, name: events.append(("start", name)),
                               lambda k, n, result: events.append(("done", k, n)))
    assert list(results) == [f"d{i}" for i in range(5)] and all(r["verdict"] == "pass" and r["seconds"] >= 0.3 for r in results.values())
    assert _most_at_once(log) == 2, log
    assert [e for e in events if e[0] == "done"] == [("done", k, 5) for k in range(1, 6)]
    log.clear()
    runner._run_each(chosen[:3], 1, None, None)
    assert _most_at_once(log) == 1


def test_a_drill_that_raises_stops_the_suite_and_the_rest_never_start():
    import threading

    import pytest

    from opslab.drills import runner

    log, lock = [], threading.Lock()
    chosen = [_timed_drill("first", log, lock, 0.05, boom=True), *(_timed_drill(f"later{i}", log, lock, 0.5) for i in range(4))]
    with pytest.raises(RuntimeError, match="first broke"):
        runner._run_each(chosen, 2, None, None)
    started = {name for event, name, _ in log if event == "start"}
    assert "first" in started and len(started) < len(chosen), "drills queued behind the failure were cancelled"


def test_jobs_out_of_range_or_not_a_number_are_one_line_exit_2(lab):
    for bad, says in (("0", "0 is out of range (expected 1-8 drills at once)"), ("nine", "'nine' is not a number of drills"),
                      ("9", "9 is out of range")):
        done = lab("drill", "run", "--kind", "node", "--jobs", bad)
        assert done.code == 2 and len(done.err.strip().splitlines()) == 1 and says in done.err and "Traceback" not in done.err
        assert not lab.root.exists()
    matrix = lab("drill", "matrix", "--jobs", "0", "--check")
    assert matrix.code == 2 and "out of range" in matrix.err


def test_several_names_run_together_and_write_the_scorecard(lab):
    done = lab("drill", "run", "mismatch", "stale_data", "--jobs", "2", "--json")
    doc = json.loads(done.out.splitlines()[-1])  # after one event line per drill started and finished
    assert done.code == 0 and doc["data"]["jobs"] == 2 and doc["data"]["seconds"] > 0, done.err
    assert [r["drill"] for r in doc["data"]["results"]] == ["stale_data", "mismatch"]  # registry order, whichever ended first
    # under SOURCE_DATE_EPOCH (the lab fixture sets it) a result's duration is 0, like every duration tc writes
    assert all(r["seconds"] == 0 and contracts.errors_for("drill_result", r, "r") == [] for r in doc["data"]["results"])
    card = json.loads((lab.root / "drills/scorecard.json").read_text())
    assert sorted(row["drill"] for row in card["drills"]) == ["mismatch", "stale_data"]
    finished = [json.loads(line) for line in done.out.splitlines()[:-1] if '"drill_finished"' in line]
    assert sorted(e["index"] for e in finished) == [1, 2] and {e["drill"] for e in finished} == {"mismatch", "stale_data"}
    unknown = lab("drill", "run", "mismatch", "mismach")
    assert unknown.code == 2 and "did you mean 'mismatch'" in unknown.err


def test_drills_whose_part_is_missing_are_skipped_saying_how_to_install_it(monkeypatch):
    from opslab import cachedb
    from opslab.drills import runner
    from opslab.errors import InputError

    def absent() -> str:
        raise cachedb.Unavailable(f"redis-server not found (the node's cache database needs it): {cachedb.INSTALL_HINT}")

    monkeypatch.setattr(cachedb, "find_server", absent)
    warm = sorted(n for n, d in DRILLS.items() if d.missing())
    assert warm == ["node_warm_restart", "node_warm_restart_flush", "node_warm_restart_venue_moved"]
    planned = runner.run_all(check=True, kind="node")
    assert f"would run {sum(d.kind == 'node' for d in DRILLS.values()) - 3} node drill(s)" in planned.summary
    assert [line.split()[0] for line in planned.details] == warm and all("apt-get install redis-server" in line for line in planned.details)
    try:
        runner.run("node_warm_restart")
    except InputError as exc:
        assert str(exc) == ("drill node_warm_restart: cannot run on this machine: redis-server not found (the node's cache database "
                            "needs it): apt-get install redis-server")
    else:
        raise AssertionError("a drill that cannot run here must say so")
