"""Every drill detects its failure, and with detection disabled (test hook) is reported NOT detected."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_tc
from opslab.drills.registry import DRILLS

pytestmark = pytest.mark.integration
LAB = sorted(name for name, drill in DRILLS.items() if drill.kind == "lab")  # node drills: test_node_drills.py


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    root = tmp_path_factory.mktemp("drills") / "artifacts"
    result = run_tc("drill", "run", "--all", "--json", artifacts=root, timeout=900)
    return root, result


@pytest.fixture(scope="module")
def undetected(tmp_path_factory):
    root = tmp_path_factory.mktemp("drills-off") / "artifacts"
    result = run_tc("drill", "run", "--all", "--json", artifacts=root, timeout=900, TC_DRILL_DETECTION="off")
    return root, result


def test_all_drills_pass(detected):
    root, result = detected
    assert result.code == 0, result.out + result.err
    card = json.loads((root / "drills/scorecard.json").read_text())
    assert card["total"] == len(LAB) == 7 and card["passed"] == 7
    assert {row["kind"] for row in card["drills"]} == {"lab"}
    for name in LAB:
        doc = json.loads((root / f"drills/{name}/result.json").read_text())
        assert doc["detected"] is True and doc["verdict"] == "pass" and doc["time_to_detect"]["value"] is not None
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0
    assert not (root / "runs").exists(), "drills must not touch the user's runs"
    assert not (root / "state").exists(), "drills must not touch the user's kill switch"


@pytest.mark.parametrize("name", LAB)
def test_each_drill_can_fail(undetected, name):
    root, result = undetected
    assert result.code == 4
    doc = json.loads((root / f"drills/{name}/result.json").read_text())
    assert doc["detected"] is False and doc["verdict"] == "fail" and doc["detection_enabled"] is False


def test_every_drill_run_is_a_new_observation(detected):
    """A drill is an observation: a rerun records a new result with its own finish time (the
    exporter's tc_drill_last_run_timestamp_seconds moves) and one more history line."""
    root, _ = detected
    history = root / "drills/mismatch/history.jsonl"
    before = history.read_text().splitlines()
    again = run_tc("drill", "run", "mismatch", "--json", artifacts=root, SOURCE_DATE_EPOCH="1700000999")
    lines = again.out.strip().splitlines()
    assert again.code == 0 and json.loads(lines[0])["event"] == "drill" and json.loads(lines[-1])["status"] == "changed"
    after = history.read_text().splitlines()
    assert len(after) == len(before) + 1 and json.loads(after[-1])["finished_at"] == "2023-11-14T22:29:59Z"
    assert json.loads((root / "drills/mismatch/result.json").read_text())["finished_at"] == "2023-11-14T22:29:59Z"
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def test_unknown_drill_and_usage(tmp_path):
    result = run_tc("drill", "run", "nope", artifacts=tmp_path)
    assert result.code == 2 and "unknown; known: stale_data" in result.err
    assert run_tc("drill", "run", artifacts=tmp_path).code == 2


def test_every_drill_has_a_runbook_with_the_required_sections_and_working_links():
    docs = REPO / "docs"
    nav = (REPO / "mkdocs.yml").read_text()
    for drill in DRILLS.values():
        page = docs / drill.runbook
        assert page.is_file(), f"{drill.name}: no runbook at docs/{drill.runbook}"
        text = page.read_text()
        for heading in ("## Symptom", "## How it is detected", "## Diagnosis", "## Recovery", "## Verify recovery"):
            assert heading in text, f"{page}: missing {heading}"
        assert drill.runbook in nav, f"{drill.runbook} is not in the docs nav"
    for page in docs.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).resolve().is_file(), f"{page}: broken link {target}"
