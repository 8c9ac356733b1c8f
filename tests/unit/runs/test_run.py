"""The run object (opslab/runs/run.py): an error escaping a run seals it as failed, never completed or running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SPECS
from opslab import journal, runs, spec, verify


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> spec.RunSpec:
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return spec.load(SPECS / "demo.yaml")


def _meta(folder: Path) -> dict:
    return json.loads((folder / "metadata.json").read_text())


def _events(folder: Path) -> list[str]:
    return [e["event"] for e in journal.read(folder / "journal.jsonl")]


def test_an_error_escaping_a_started_run_marks_it_failed_and_seals_it(demo: spec.RunSpec):
    with pytest.raises(ValueError):
        with runs.open(demo) as run:
            run.meta(status="running")
            run.flush()
            run.meta(status="completed")  # the command got this far before the error
            run.meta(bars=int("twenty"))  # a real error in the command's own code
    folder = runs.run_dir(demo.run_id)
    assert _meta(folder)["status"] == "failed"
    last = journal.read(folder / "journal.jsonl")[-1]
    assert last["event"] == "run_failed" and last["data"]["error"] == "ValueError: invalid literal for int() with base 10: 'twenty'"
    assert verify.verify_run(folder) == []  # manifest written after the failure, everything in it


def test_a_failure_the_command_recorded_is_not_recorded_twice(demo: spec.RunSpec):
    with pytest.raises(RuntimeError):
        with runs.open(demo) as run:
            run.meta(status="failed")
            raise RuntimeError("the command said so itself")
    folder = runs.run_dir(demo.run_id)
    assert _meta(folder)["status"] == "failed" and "run_failed" not in _events(folder)
    assert verify.verify_run(folder) == []


def test_an_observation_that_fails_leaves_the_run_as_it_was(demo: spec.RunSpec):
    with runs.open(demo) as run:
        run.meta(status="completed")
    with pytest.raises(RuntimeError):
        with runs.open(demo) as run:  # e.g. a probe: it sets no status
            run.event("kill_switch_checked", {"kill_switch": "released", "engaged": False})
            raise RuntimeError("the observation broke")
    folder = runs.run_dir(demo.run_id)
    assert _meta(folder)["status"] == "completed" and "run_failed" not in _events(folder)
    assert verify.verify_run(folder) == []


def test_a_report_that_cannot_be_written_fails_the_run_after_the_manifest(demo: spec.RunSpec):
    with pytest.raises(Exception) as raised:
        with runs.open(demo) as run:
            run.meta(status="completed")
            run.path("report").mkdir()  # report.md cannot be written: a real failure at the run's close
    folder = runs.run_dir(demo.run_id)
    assert _meta(folder)["status"] == "failed"
    last = journal.read(folder / "journal.jsonl")[-1]
    assert last["event"] == "run_failed" and type(raised.value).__name__ in last["data"]["error"]
    listed = json.loads((folder / "manifest.json").read_text())["files"]
    assert "metadata.json" in listed and "journal.jsonl" in listed
