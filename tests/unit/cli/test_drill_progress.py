"""`tc drill run` says what it is doing: a line as a drill starts, and with --all/--kind one as each finishes."""

from __future__ import annotations

import json

import pytest

from opslab.cli import main
from opslab.drills import runner
from opslab.drills.registry import DRILLS

FAST = ["mismatch", "missing_update"]  # two quick lab drills stand in for the whole kind


@pytest.fixture
def two_drills(tmp_path, monkeypatch):
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setattr(runner, "_of_kind", lambda kind: [DRILLS[name] for name in FAST])


def test_all_prints_a_line_as_each_drill_starts_and_as_it_finishes(two_drills, capsys):
    assert main(["drill", "run", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "drill 1/2: mismatch ..."
    assert lines[1].startswith("drill 1/2: mismatch pass (detected) in ") and lines[1].endswith(" s")
    assert lines[2] == "drill 2/2: missing_update ..."
    assert lines[3].startswith("drill 2/2: missing_update pass (detected) in ")
    assert lines[4].startswith("changed: lab drills: 2/2 detected")


def test_all_in_json_is_one_event_per_start_and_finish_then_the_result(two_drills, capsys):
    assert main(["drill", "run", "--kind", "lab", "--json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d.get("event"), d.get("drill")) for d in docs[:4]] == [
        ("drill", "mismatch"), ("drill_finished", "mismatch"), ("drill", "missing_update"), ("drill_finished", "missing_update")]
    assert docs[1]["verdict"] == "pass" and docs[1]["detected"] is True and docs[1]["seconds"] >= 0
    assert docs[4]["status"] == "changed" and len(docs) == 5


def test_one_drill_prints_a_line_when_it_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    assert main(["drill", "run", "mismatch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "drill mismatch ..." and lines[1].startswith("changed: drill mismatch: pass")


def test_check_and_an_unknown_drill_announce_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    assert main(["drill", "run", "mismatch", "--check"]) == 0
    assert main(["drill", "run", "mismatchh"]) == 2
    captured = capsys.readouterr()
    assert "..." not in captured.out and captured.out.startswith("changed: would run drill mismatch")
    assert captured.err.strip().endswith("did you mean 'mismatch'?") and len(captured.err.strip().splitlines()) == 1
