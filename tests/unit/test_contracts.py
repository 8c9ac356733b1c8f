"""The schemas themselves: valid 2020-12, described, closed, and the generated docs are current."""

from __future__ import annotations

import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from conftest import REPO
from opslab import contracts


@pytest.mark.parametrize("name", contracts.schema_names())
def test_schema_is_valid_and_every_field_described(name):
    schema = contracts.load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node, where):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub or "$ref" in sub, f"{name}: {where}/{key} has no description"
            if isinstance(sub, dict):
                walk(sub, f"{where}/{key}")
                if isinstance(sub.get("items"), dict):
                    walk(sub["items"], f"{where}/{key}[]")

    walk(schema, "")
    assert schema.get("additionalProperties") is False


def test_every_registered_artifact_has_a_schema_or_is_not_json():
    for art in contracts.ARTIFACTS.values():
        assert art.scope in ("run", "root") and art.kind in ("state", "observation", "output", "log", "derived")
        if art.path.endswith((".json", ".jsonl")) and art.name != "generation":
            assert art.schema in contracts.schema_names(), art.name
        else:
            assert art.schema is None, art.name
        # no history: the scorecard repeats the drill results; venue stats are running counters rewritten up to once a second
        assert (art.history is not None) == (art.kind == "observation" and art.name not in ("drill_scorecard", "venue_stats")), art.name


def test_no_artifact_file_name_is_spelled_outside_the_registry():
    """Every writer, reader and the exporter find artifacts through contracts.ARTIFACTS."""
    names = {art.path.rsplit("/", 1)[-1] for art in contracts.ARTIFACTS.values()} - {".generation", "*"}  # "*" (engine logs) names no file
    offenders = []
    for path in (REPO / "opslab").rglob("*.py"):
        if path.name == "contracts.py":
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(REPO)}: {name}" for name in names if f'"{name}"' in text or f"'{name}'" in text]
    assert offenders == []


def test_the_runspec_scenarios_are_generated_from_the_registry():
    proc = subprocess.run([sys.executable, "scripts/gen_runspec_scenarios.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_schema_reference_docs_are_current():
    proc = subprocess.run([sys.executable, "scripts/gen_schema_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_artifact_at_fills_every_star_in_order_and_refuses_a_mismatch(tmp_path):
    from opslab import contracts

    assert contracts.artifact("node_reports").at(tmp_path, "fills") == tmp_path / "node" / "reports" / "fills.csv"
    assert contracts.artifact("venue_state").at(tmp_path, "r1") == tmp_path / "venue" / "r1" / "state.json"
    assert contracts.artifact("drill_result").at(tmp_path, "d", history=True) == tmp_path / "drills" / "d" / "history.jsonl"
    assert contracts.artifact("dataset_bars").in_folder(tmp_path / "datasets" / "x") == tmp_path / "datasets" / "x" / "bars.csv"
    assert contracts.artifact("dataset_catalog").in_folder(tmp_path / "x", depth=1) == tmp_path / "x" / "catalog"
    for art, fill in (("metadata", ("x",)), ("venue_state", ()), ("venue_state", ("../up",)), ("venue_state", ("",))):
        with pytest.raises(ValueError):
            contracts.artifact(art).at(tmp_path, *fill)


def _reference(rel: str, scope: str) -> tuple[str, bool] | None:
    """classify as the registry reads: the first artifact, in its order, whose path or history log matches REL segment
    by segment with fnmatch (the plain rule the exporter's faster classify must keep)."""
    import fnmatch

    def match(pattern: str) -> bool:
        p, q = pattern.split("/"), rel.split("/")
        return len(p) == len(q) and all(fnmatch.fnmatchcase(b, a) for a, b in zip(p, q, strict=True))

    for a in contracts.ARTIFACTS.values():
        if a.scope == scope and match(a.path):
            return a.name, False
        if a.scope == scope and a.history and match(a.history):
            return a.name, True
    return None


def test_classify_finds_what_segment_by_segment_fnmatch_finds():
    assert not [a.name for a in contracts.ARTIFACTS.values() if any(c in a.path + (a.history or "") for c in "?[")], \
        "a registered path with ? or [: contracts._matches compares segments without * as they are"
    paths = set()
    for a in contracts.ARTIFACTS.values():
        for pattern in filter(None, (a.path, a.history)):
            paths |= {pattern.replace("*", "x1"), pattern.replace("*", ""), pattern.replace("*", "a/b"), pattern + ".tmp",
                      "sub/" + pattern.replace("*", "x1"), pattern.replace("*", "x1").upper()}
    paths |= {"", "runs", "report.html", "journal.jsonl.1", "reports/x.csv", "./metadata.json"}
    for scope in ("run", "root"):
        got = {rel: (lambda f: f and (f[0].name, f[1]))(contracts.classify(rel, scope)) for rel in paths}
        assert got == {rel: _reference(rel, scope) for rel in paths}
        assert sum(v is not None for v in got.values()) >= 10, scope  # the paths above do hit the registry
    assert contracts.artifact("orders").matches("orders.json") and not contracts.artifact("orders").matches("x/orders.json")
