"""Run control: init converges, refuses a different spec, locks, and verify catches tampering."""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path

import yaml

from conftest import SPECS, tree_bytes

DEMO = str(SPECS / "minimal.json")


def test_init_then_reinit_is_ok_and_touches_nothing(lab):
    first = lab("run", "init", "--spec", DEMO, "--json")
    assert first.code == 0 and first.json()["status"] == "changed"
    folder = lab.root / "runs" / "minimal"
    assert sorted(p.name for p in folder.iterdir()) == ["journal.jsonl", "manifest.json", "metadata.json", "metrics.json", "report.html",
                                                        "report.md", "runspec.json"]
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    second = lab("run", "init", "--spec", DEMO, "--json")
    assert second.json()["status"] == "ok"
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    events = [json.loads(line)["event"] for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert events == ["run_initialized", "dataset_linked"]
    meta = json.loads((folder / "metadata.json").read_text())
    dataset = json.loads(next((lab.root / "datasets").glob("*/manifest.json")).read_text())
    assert meta["dataset"]["fingerprint"] == dataset["fingerprint"]
    assert meta["config_hash"] == lab("spec", "validate", DEMO, "--json").json()["data"]["config_hash"]


def test_a_run_made_on_another_engine_is_refused_untouched(lab):
    """A run id names one spec on one engine: a run an earlier release made (here its recorded version
    is changed; tests/integration/test_engine_profiles.py does it with two real engines) is not added to."""
    assert lab("run", "init", "--spec", DEMO).code == 0
    meta_path = lab.root / "runs" / "minimal" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["engine_config_hash"].startswith("sha256:") and meta["engine_config_hash"] != meta["config_hash"]
    meta["versions"]["nautilus_trader"] = "1.200.0"
    meta_path.write_text(json.dumps(meta))
    before = tree_bytes(lab.root)
    result = lab("run", "init", "--spec", DEMO)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "run 'minimal' ran on another engine (nautilus_trader 1.200.0; this environment has " in result.err
    assert "make setup ENGINE=1.200.0" in result.err
    assert tree_bytes(lab.root) == before


def test_different_spec_same_run_id_is_refused_untouched(lab, tmp_path):
    assert lab("run", "init", "--spec", DEMO).code == 0
    before = tree_bytes(lab.root)
    other = json.loads(Path(DEMO).read_text())
    other["dataset"]["seed"] = 8
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    result = lab("run", "init", "--spec", str(path))
    assert result.code == 2
    assert "already exists with a different spec" in result.err and result.err.count("\n") == 1
    assert tree_bytes(lab.root) == before


def test_check_plans_without_writing(lab):
    result = lab("run", "init", "--spec", DEMO, "--check", "--json")
    assert result.code == 0 and result.json()["status"] == "changed"
    assert not (lab.root / "runs").exists()


def test_locked_run_gives_a_clear_error(lab):
    assert lab("run", "init", "--spec", DEMO).code == 0
    folder = lab.root / "runs" / "minimal"
    (folder / "manifest.json").unlink()  # force a write on the next init
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = lab("run", "init", "--spec", DEMO)
    finally:
        os.close(fd)
    assert result.code == 5 and "in use by another tc process" in result.err  # busy
    assert lab("run", "init", "--spec", DEMO, "--json").json()["status"] == "changed"


def test_verify_catches_edits_extra_files_and_missing_files(lab):
    assert lab("run", "init", "--spec", DEMO).code == 0
    assert lab("artifacts", "verify", "--all").code == 0
    folder = lab.root / "runs" / "minimal"
    metrics = folder / "metrics.json"
    original = metrics.read_bytes()
    metrics.write_bytes(original.replace(b'"dataset_rows": 120', b'"dataset_rows": 121'))
    result = lab("artifacts", "verify", "minimal", "--json")
    assert result.code == 4
    assert any("metrics.json: digest does not match" in p for p in result.json()["details"])
    metrics.write_bytes(original)
    (folder / "stray.txt").write_text("x")
    assert any("stray.txt: not in manifest" in p for p in lab("artifacts", "verify", "--json").json()["details"])
    (folder / "stray.txt").unlink()
    (folder / "report.md").unlink()
    assert any("report.md: listed in manifest.json but missing" in p for p in lab("artifacts", "verify", "--json").json()["details"])


def test_verify_catches_schema_violation_even_with_matching_digest(lab):
    assert lab("run", "init", "--spec", DEMO).code == 0
    folder = lab.root / "runs" / "minimal"
    meta = json.loads((folder / "metadata.json").read_text())
    meta["status"] = "exploded"
    (folder / "metadata.json").write_text(json.dumps(meta))
    assert lab("report", "minimal").code == 0  # rewrites the manifest over the bad file
    result = lab("artifacts", "verify", "minimal", "--json")
    assert result.code == 4 and any("/status" in p for p in result.json()["details"])


def test_list_show_and_unknown_run(lab):
    assert lab("run", "init", "--spec", DEMO).code == 0
    listed = lab("run", "list", "--json").json()["data"]["runs"]
    assert [r["run_id"] for r in listed] == ["minimal"] and listed[0]["status"] == "initialized"
    shown = lab("run", "show", "minimal", "--json").json()["data"]
    assert shown["journal_events"] == 2 and shown["last_event"] == "dataset_linked"
    missing = lab("run", "show", "nope")
    assert missing.code == 2 and "not found" in missing.err
    assert lab("run", "show", "../etc").code == 2


def test_crashed_init_is_completed_not_duplicated(lab):
    assert lab("run", "init", "--spec", DEMO).code == 0
    folder = lab.root / "runs" / "minimal"
    lines = (folder / "journal.jsonl").read_text().splitlines(keepends=True)
    (folder / "journal.jsonl").write_text(lines[0])  # as if killed after the first event
    (folder / "manifest.json").unlink()
    assert lab("run", "init", "--spec", DEMO, "--json").json()["status"] == "changed"
    events = [json.loads(line)["event"] for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert events == ["run_initialized", "dataset_linked"]
    assert lab("artifacts", "verify", "--all").code == 0


def test_spec_in_yaml_and_json_hash_the_same(lab, tmp_path):
    data = json.loads(Path(DEMO).read_text())
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(data))
    a = lab("spec", "validate", DEMO, "--json").json()["data"]["config_hash"]
    b = lab("spec", "validate", str(path), "--json").json()["data"]["config_hash"]
    assert a == b


def test_verify_an_empty_run_id_is_exit_2_not_all(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    result = lab("artifacts", "verify", "")
    assert result.code == 2 and "RUN_ID: empty" in result.err and len(result.err.strip().splitlines()) == 1


def test_a_malformed_step_delay_is_exit_2_and_writes_no_run(lab):
    result = lab("run", "paper", "--spec", str(SPECS / "paper-demo.yaml"), TC_TEST_STEP_DELAY_MS="abc")
    assert result.code == 2 and "TC_TEST_STEP_DELAY_MS: 'abc'" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (lab.root / "runs").exists() or not any((lab.root / "runs").iterdir())


def test_show_reports_a_journal_with_a_foreign_line_as_damaged(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    assert lab("run", "show", "minimal").code == 0
    journal = lab.root / "runs/minimal/journal.jsonl"
    lines = journal.read_text().splitlines()
    foreign = {**json.loads(lines[-1]), "run_id": "someone-else", "seq": len(lines) + 1}
    journal.write_text("\n".join(lines + [json.dumps(foreign)]) + "\n")
    result = lab("run", "show", "minimal", "--json")
    assert result.code == 4 and result.json()["status"] == "failed"
    assert any(f"journal.jsonl:{len(lines) + 1}" in p for p in result.json()["details"]), result.json()["details"]
    assert "DAMAGED" in lab("run", "show", "minimal").out


def test_list_prints_a_header_over_aligned_columns(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    lines = lab("run", "list").out.splitlines()
    assert lines[0].startswith("ok: 1 run(s) under ")
    assert lines[1].split() == ["RUN_ID", "STATUS", "ENGINE", "SCENARIO", "CREATED"]
    assert lines[2].split()[:4] == ["minimal", "initialized", "backtest", "ops_smoke_demo"]
    assert lines[1].index("STATUS") == lines[2].index("initialized")


def test_show_prints_one_line_per_field(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    shown = lab("run", "show", "minimal")
    fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in shown.out.splitlines()[1:])
    assert shown.code == 0 and shown.out.startswith("ok: run minimal: initialized (backtest)")
    assert fields["journal"] == "2 event(s), last dataset_linked" and fields["config hash"].startswith("sha256:")
    assert {"status", "engine", "scenario", "strategy", "created", "updated", "files", "folder"} <= set(fields)
    assert "tc artifacts verify" not in shown.out


def test_show_reports_a_broken_chain_and_names_artifacts_verify(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    journal = lab.root / "runs/minimal/journal.jsonl"
    lines = journal.read_text().splitlines()
    second = {**json.loads(lines[1]), "prev": "a" * 64}  # well-formed, but not the hash of line 1
    journal.write_text("\n".join([lines[0], json.dumps(second), *lines[2:]]) + "\n")
    text = lab("run", "show", "minimal")
    assert text.code == 4 and text.out.startswith("failed:") and "DAMAGED" in text.out
    assert "journal.jsonl:2: chain broken" in text.out and "`tc artifacts verify minimal`" in text.out
    doc = lab("run", "show", "minimal", "--json").json()
    assert doc["status"] == "failed" and any("chain broken" in p for p in doc["data"]["journal_problems"])
    assert lab("artifacts", "verify", "minimal").code == 4  # the command show points at agrees
