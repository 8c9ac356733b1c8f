"""Drill kinds on the command line: listing and choosing lab or node drills, --check writing nothing,
bad choices refused with one line, and the scorecard page showing node findings."""

from __future__ import annotations

import json

from conftest import REPO
from opslab import contracts
from opslab.report import html
from opslab.drills.node import stack
from opslab.drills.registry import DRILLS


def test_there_are_seven_lab_and_ten_node_drills_each_with_a_runbook_page():
    kinds = {kind: sorted(n for n, d in DRILLS.items() if d.kind == kind) for kind in ("lab", "node")}
    assert len(kinds["lab"]) == 7 and len(kinds["node"]) == 10 and len(DRILLS) == 17
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
