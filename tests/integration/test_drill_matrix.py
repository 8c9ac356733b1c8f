"""The upgrade canary for real: every node drill on each engine profile built in this checkout (.venv-VERSION;
`.ci/run` builds every profile that a Python on the machine runs), each in its own environment, through
the real alerting path; then the page, the exporter's series and `tc artifacts verify` over the result."""

from __future__ import annotations

import json

import pytest

from conftest import run_tc
from opslab.drills import matrix
from opslab.drills.node import stack
from opslab.drills.registry import DRILLS

ENGINES = sorted(matrix.environments(), key=lambda e: tuple(map(int, e.split(".")[:3])))
NODE = [name for name, drill in DRILLS.items() if drill.kind == "node"]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(stack.missing() is not None, reason=f"node drills need the alerting stack: {stack.missing()}"),
    pytest.mark.skipif(len(ENGINES) < 2, reason=f"the matrix compares engines and this checkout has one ({ENGINES}): "
                                                "build another with `make setup ENGINE=1.221.0` (docs/engine-profiles.md)"),
]


@pytest.fixture(scope="module")
def ran(node_drill_matrix):
    root, keep, result = node_drill_matrix
    return root, result


def test_each_engines_drill_artifacts_are_kept_where_asked(node_drill_matrix):
    _, keep, _ = node_drill_matrix
    assert sorted(p.name for p in keep.iterdir()) == ENGINES
    for engine in ENGINES:
        card = json.loads((keep / engine / "artifacts" / "drills" / "scorecard.json").read_text())
        assert sorted(row["drill"] for row in card["drills"]) == sorted(NODE)
        assert run_tc("artifacts", "verify", "--all", artifacts=keep / engine / "artifacts").code == 0


def test_every_node_drill_detects_its_incident_on_every_engine(ran):
    root, result = ran
    assert result.code == 0, result.out[-3000:] + result.err[-3000:]
    doc = json.loads((root / "drills/matrix.json").read_text())
    assert [row["engine"] for row in doc["engines"]] == ENGINES
    assert all(row["exit_code"] == 0 and row["error"] is None and row["jobs"] == 3 for row in doc["engines"])
    assert [row["drill"] for row in doc["drills"]] == NODE
    for row in doc["drills"]:
        assert sorted(row["cells"], key=ENGINES.index) == ENGINES, row["drill"]
        for engine, cell in row["cells"].items():
            assert cell["engine_version"] == f"nautilus_trader {engine}" and cell["seconds"] > 0, (row["drill"], engine)
            assert cell["verdict"] == "pass" and cell["findings"] and cell["time_to_detect"]["unit"] == "ms", (row["drill"], engine)
            assert cell["alert"] is None or cell["alert"]["alertname"].startswith("Tc")
        assert row["changed"] == bool(row["changes"]) == bool(matrix.differences(row["cells"]))
    assert doc["summary"]["passed"] == {engine: len(NODE) for engine in ENGINES}
    events = [json.loads(line) for line in result.out.splitlines() if line.startswith('{"event"')]
    assert any(e["message"].startswith(f"{ENGINES[-1]}: drill 1/{len(NODE)}") for e in events), "progress per drill and engine"


def test_the_page_the_series_and_verify_cover_the_matrix(ran):
    root, _ = ran
    page = (root / "drills/matrix.html").read_text()
    assert all(f"nautilus_trader {engine}" in page for engine in ENGINES) and all(name in page for name in NODE)
    scrape = run_tc("metrics", "dump", artifacts=root)
    assert scrape.code == 0
    for engine in ENGINES:
        assert f'tc_drill_matrix_detected{{drill="node_crash",engine="{engine}"}} 1.0' in scrape.out
    assert "tc_drill_matrix_changed{" in scrape.out
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0
    (root / "drills/matrix.json").write_text((root / "drills/matrix.json").read_text().replace('"pass"', '"fail"', 1))
    tampered = run_tc("artifacts", "verify", "--all", artifacts=root)
    assert tampered.code != 0 and "matrix.json" in tampered.out + tampered.err
