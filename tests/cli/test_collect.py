"""`tc artifacts collect` in a subprocess: exit codes, the lines it prints, --json, --help (tests/conftest.py sweep_root)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_tc


@pytest.fixture
def root(sweep_root, tmp_path):
    copy = tmp_path / "artifacts"
    shutil.copytree(sweep_root, copy, symlinks=True)
    return copy


def test_collect_writes_then_says_ok_and_json_names_the_members(root):
    first = run_tc("artifacts", "collect", "sweep", "--count", "3", artifacts=root)
    assert first.code == 0 and first.out.startswith("changed: collection sweep: 3 run(s) verified") and first.err == ""
    second = run_tc("artifacts", "collect", "sweep", "--count", "3", "--json", artifacts=root)
    assert second.code == 0
    doc = second.json()
    assert doc["status"] == "ok" and [m["run_id"] for m in doc["data"]["members"]] == ["sweep-0", "sweep-1", "sweep-2"]
    assert doc["data"]["digest"] == json.loads((root / "collections" / "sweep.json").read_text())["digest"]


def test_a_tampered_and_a_missing_index_exit_4_naming_both(root):
    (root / "runs" / "sweep-0" / "report.md").write_text("edited\n")
    shutil.rmtree(root / "runs" / "sweep-2")
    res = run_tc("artifacts", "collect", "sweep", "--count", "3", artifacts=root)
    assert res.code == 4
    lines = res.out.splitlines()
    assert lines[0] == "failed: collection sweep: 2 of 3 index(es) missing, unfinished or tampered; nothing written"
    assert lines[1].startswith("  index 0 (run sweep-0): tampered: runs/sweep-0/report.md: digest does not match")
    assert lines[2] == "  index 2 (run sweep-2): missing (no runs/sweep-2/)"
    assert not (root / "collections").exists()


@pytest.mark.parametrize("args, message", [
    (["Not_A_Name", "--count", "3"], "error: NAME: 'Not_A_Name': expected lowercase letters"),
    (["sweep", "--count", "0"], "error: --count: 0: expected an integer from 1 to 1000"),
    (["sweep", "--count", "many"], "error: tc artifacts collect: argument --count: invalid int value: 'many'"),
    (["sweep"], "error: tc artifacts collect: the following arguments are required: --count"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(root, args, message):
    res = run_tc("artifacts", "collect", *args, artifacts=root)
    assert res.code == 2 and res.out == ""
    assert len(res.err.splitlines()) == 1 and res.err.startswith(message) and "Traceback" not in res.err
    assert not (root / "collections").exists()


def test_help_teaches_with_examples(tmp_path):
    res = run_tc("artifacts", "collect", "--help", artifacts=tmp_path)
    assert res.code == 0
    assert "tc artifacts collect sweep --count 3" in res.out and "--check" in res.out and "sweep-collect" in res.out
