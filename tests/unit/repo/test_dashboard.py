"""The Grafana dashboard's structure, checked without Grafana (no Grafana image can be had here).

Its queries are answered by a real Prometheus in tests/integration/test_observability.py; here:
schema version, unique ids, a layout without overlaps, the datasource only through the
`datasource` variable, the `run` variable, annotations, units, state mappings, tables as tables,
and runbook links to docs pages that exist.
"""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any, Iterator

import pytest
import yaml

import dashboard_queries
from conftest import REPO
from opslab.metrics import catalog

DASH = dashboard_queries.load()
PANELS = [p for p in DASH["panels"] if p["type"] != "row"]
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
KNOWN = {f.name + ("_total" if f.kind == "counter" else ""): f for f in catalog.FAMILIES}

# State panels: the value each state maps to, its text and colour.
STATES = {
    "Kill switch engaged": {"0": ("released", "green"), "1": ("ENGAGED", "red")},
    "Kill switch state file valid": {"1": ("valid", "green"), "0": ("UNREADABLE", "red")},
    "Connectivity Readiness": {"1": ("READY", "green"), "0": ("NOT READY", "red")},
    "Connectivity Probe State": {"1": ("UP", "green"), "0": ("DOWN", "red")},
    "Reconciliation mismatches": {"0": ("match", "green")},
    "Node trading state": {"0": ("ACTIVE", "green"), "1": ("REDUCING", "orange"), "2": ("HALTED", "red")},
}


def _refs(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every value stored under a "datasource" key, anywhere in the JSON, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{path}/{key}", value
            yield from _refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{path}/{i}")


def _mappings(panel: dict) -> dict[str, tuple[str, str]]:
    found = {}
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        if mapping["type"] == "value":
            found.update({value: (opt["text"], opt["color"]) for value, opt in mapping["options"].items()})
    return found


def test_schema_version_and_identity():
    assert isinstance(DASH["schemaVersion"], int) and DASH["schemaVersion"] >= 39  # Grafana 11 (compose pins 11.2)
    assert DASH["uid"] == "opslab-overview" and DASH["editable"] is False


def test_panel_ids_are_unique():
    ids = [p["id"] for p in DASH["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)


def test_layout_fits_24_columns_without_overlaps():
    boxes = []
    for p in DASH["panels"]:
        g = p["gridPos"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        boxes.append((p["title"], g))
    for (a, g), (b, h) in combinations(boxes, 2):
        apart = g["x"] + g["w"] <= h["x"] or h["x"] + h["w"] <= g["x"] or g["y"] + g["h"] <= h["y"] or h["y"] + h["h"] <= g["y"]
        assert apart, f"panels {a!r} and {b!r} overlap"


def test_every_datasource_reference_is_the_variable():
    refs = list(_refs(DASH))
    assert len(refs) >= 2 * len(PANELS)  # panels and their targets at least
    for where, value in refs:
        assert value == DS_REF, f"{where}: {value} (expected the $datasource variable)"
    assert "opslab-prometheus" not in dashboard_queries.DASHBOARD.read_text()


def test_the_datasource_variable_defaults_to_the_provisioned_prometheus():
    variables = {v["name"]: v for v in DASH["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    provisioned = yaml.safe_load((REPO / "grafana/provisioning/datasources/opslab.yml").read_text())["datasources"]
    assert [d["type"] for d in provisioned if d.get("isDefault")] == ["prometheus"]  # what the variable picks first


def test_the_run_variable_comes_from_label_values_and_filters_every_per_run_query():
    run = {v["name"]: v for v in DASH["templating"]["list"]}["run"]
    assert run["type"] == "query" and run["query"] == "label_values(tc_run_info, run_id)" == run["definition"]  # the classic form every Grafana reads
    assert run["includeAll"] and run["allValue"] == ".*" and run["datasource"] == DS_REF
    for panel in PANELS:
        for target in panel["targets"]:
            for metric in re.findall(r"\btc_[a-z0-9_]+", target["expr"]):
                if "run_id" in KNOWN[metric].labels:
                    assert 'run_id=~"$run"' in target["expr"], f"{panel['title']}: {metric} ignores $run"


def test_every_query_names_only_metrics_the_exporter_declares():
    exprs = [(p["title"], t["expr"]) for p in PANELS for t in p["targets"]] + [(a["name"], a["expr"]) for a in DASH["annotations"]["list"]]
    assert len(exprs) >= 20
    for title, expr in exprs:
        metrics = re.findall(r"\btc_[a-z0-9_]+", expr)
        assert metrics, title
        for metric in metrics:
            assert metric in KNOWN, f"{title}: unknown metric {metric}"
        dashboard_queries.interpolate(expr)  # no variable the tests (and a reader) do not know


def test_annotations_mark_kill_switch_changes_and_drill_runs():
    names = {a["name"]: a for a in DASH["annotations"]["list"]}
    assert "tc_kill_switch_events_total" in names["Kill switch changes"]["expr"]
    assert "tc_drill_last_run_timestamp_seconds" in names["Drill runs"]["expr"]
    assert all(a["enable"] and a["datasource"] == DS_REF for a in names.values())


def test_every_panel_has_a_unit():
    for panel in PANELS:
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"


@pytest.mark.parametrize("title", sorted(STATES))
def test_state_panels_map_values_to_words_and_colours(title):
    panel = next(p for p in PANELS if p["title"] == title)
    mapped = _mappings(panel)
    for value, (text, colour) in STATES[title].items():
        assert mapped[value] == (text, colour), f"{title}: {value} -> {mapped.get(value)}"
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colours = {s["color"] for s in steps}
    assert {"red", "green"} <= colours and panel["fieldConfig"]["defaults"]["color"]["mode"] == "thresholds"


def test_a_reconciliation_mismatch_is_red_and_drills_say_passed_or_failed():
    recon = next(p for p in PANELS if p["title"] == "Reconciliation mismatches")
    ranges = [m for m in recon["fieldConfig"]["defaults"]["mappings"] if m["type"] == "range"]
    assert ranges and ranges[0]["options"]["from"] == 1 and ranges[0]["options"]["result"]["color"] == "red"
    drills = next(p for p in PANELS if p["title"] == "Drill detection")
    props = {prop["id"]: prop["value"] for o in drills["fieldConfig"]["overrides"] for prop in o["properties"]}
    options = props["mappings"][0]["options"]
    assert (options["1"]["text"], options["1"]["color"], options["0"]["text"], options["0"]["color"]) == ("passed", "green", "FAILED", "red")


def test_tables_are_tables():
    tables = [p for p in PANELS if p["type"] == "table"]
    assert {p["title"] for p in tables} == {"Runs by status", "Drill detection", "Upgrade canary: node drills per engine"}
    for panel in tables:
        assert all(t.get("format") == "table" and t.get("instant") for t in panel["targets"]), panel["title"]
        assert any(t["id"] == "organize" and t["options"]["excludeByName"].get("Time") for t in panel["transformations"]), panel["title"]


def _doc_page(url: str) -> str:
    assert url.startswith("${docs_url}/"), url
    page = url[len("${docs_url}/"):].rstrip("/")
    return f"docs/{page}.md" if page else "docs/index.md"


def test_every_panel_links_to_a_docs_page_that_exists():
    for panel in PANELS:
        assert panel.get("links"), f"{panel['title']}: no link to its runbook"
        for link in panel["links"]:
            assert (REPO / _doc_page(link["url"])).is_file(), f"{panel['title']}: {link['url']}"
    docs_url = {v["name"]: v for v in DASH["templating"]["list"]}["docs_url"]
    assert docs_url["type"] == "textbox" and docs_url["query"].startswith("http://127.0.0.1:")  # `mkdocs serve`, loopback


def test_panels_named_by_other_tests_and_docs_are_there():
    titles = {p["title"] for p in PANELS}
    for needed in ("Connectivity Readiness", "Connectivity Probe State", "Connectivity Probe Latency", "Kill switch engaged", "Drill detection"):
        assert needed in titles
