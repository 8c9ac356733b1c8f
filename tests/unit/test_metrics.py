"""The exporter's collector: families from artifacts, cache by change, corrupt artifacts counted not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SPECS
from opslab.metrics import collector
from opslab.metrics.server import render


def _scrape(root: Path) -> str:
    return render(root).decode()


def test_scrape_of_an_initialized_run_and_empty_state(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    text = _scrape(lab.root)
    assert 'tc_run_status{run_id="minimal",status="initialized"} 1.0' in text
    assert 'tc_run_dataset_rows_total{run_id="minimal"} 120.0' in text
    assert "tc_kill_switch_engaged 0.0" in text
    assert 'tc_artifacts_verification_problems{run_id="minimal"} 0.0' in text


def test_warm_scrape_reads_nothing_and_a_change_is_picked_up(lab, monkeypatch):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = collector.ArtifactCollector(lab.root)
    col.samples()
    calls = []
    real = collector.run_samples
    monkeypatch.setattr(collector, "run_samples", lambda folder: calls.append(folder) or real(folder))
    col.samples()
    assert calls == []
    assert lab("killswitch", "engage", "--reason", "x").code == 0
    assert lab("run", "init", "--spec", str(SPECS / "demo.yaml")).code == 0
    names = [n for n, _, v in col.samples() if n == "tc_kill_switch_engaged" and v == 1]
    assert names and [p.name for p in calls] == ["demo"]


def _count_sweeps(col, monkeypatch) -> list[int]:
    sweeps: list[int] = []
    real = col._sweep
    monkeypatch.setattr(col, "_sweep", lambda: sweeps.append(1) or real())
    return sweeps


def test_a_change_rechecks_only_what_the_feed_names(lab, monkeypatch):
    for spec in ("minimal.json", "demo.yaml"):
        assert lab("run", "init", "--spec", str(SPECS / spec)).code == 0
    col = collector.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    sweeps = _count_sweeps(col, monkeypatch)
    checked = []
    real_check = col._check_run
    monkeypatch.setattr(col, "_check_run", lambda folder, st=None: checked.append(Path(folder).name) or real_check(folder, st))
    probe = lab("connectivity", "probe", "--spec", str(SPECS / "minimal.json"), "--url", "http://127.0.0.1:9/")  # down: exit 4
    assert probe.code == 4 and lab("killswitch", "engage", "--reason", "x").code == 0
    text = col.rendered_artifacts().decode()
    assert sweeps == [] and set(checked) == {"minimal"}, "only the run the feed named is looked at"
    assert 'tc_connectivity_probe_up{run_id="minimal",target="http://127.0.0.1:9/"} 0.0' in text
    assert "\ntc_kill_switch_engaged 1.0\n" in text and 'tc_run_info{engine_kind="backtest",run_id="demo"' in text


def test_the_feed_starting_over_or_missing_means_one_full_sweep(lab, monkeypatch):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = collector.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    sweeps = _count_sweeps(col, monkeypatch)
    (lab.root / ".generation").unlink()  # e.g. an operator cleaned up
    assert lab("run", "init", "--spec", str(SPECS / "demo.yaml")).code == 0  # writes a new feed
    assert 'run_id="demo"' in col.rendered_artifacts().decode() and sweeps == [1]
    col.rendered_artifacts()
    assert sweeps == [1], "after the sweep the new feed is followed"


def test_the_feed_rotates_past_its_size_limit_and_readers_follow(lab, monkeypatch):
    from opslab import artifacts

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = collector.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(lab.root))
    monkeypatch.setattr(artifacts, "GENERATION_MAX_BYTES", 64)
    before = (lab.root / ".generation").stat().st_ino
    for i in range(6):  # ~40 bytes a line: rotates at least once
        artifacts.write_bytes_atomic(lab.root / "drills" / f"d{i}" / "note.txt", f"{i}\n".encode())
    assert (lab.root / ".generation").stat().st_ino != before
    assert (lab.root / ".generation").stat().st_size <= 64 + 64
    assert lab("killswitch", "engage", "--reason", "after rotation").code == 0
    assert "\ntc_kill_switch_engaged 1.0\n" in col.rendered_artifacts().decode()


def test_an_edit_made_outside_tc_shows_up_at_the_next_sweep(lab, monkeypatch):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = collector.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    (lab.root / "state").mkdir()
    (lab.root / "state/kill_switch.json").write_text("hand-edited garbage")  # no feed line
    assert "\ntc_kill_switch_engaged 0.0\n" in col.rendered_artifacts().decode()  # not seen yet
    monkeypatch.setattr(col, "SWEEP_EVERY_S", 0.0)
    assert "\ntc_kill_switch_engaged 1.0\n" in col.rendered_artifacts().decode()  # the sweep sees it (fail closed)


@pytest.mark.parametrize("value", ['plain', 'with "quotes"', "back\\slash", "new\nline", "ünïcode"])
def test_sample_lines_match_prometheus_client(value):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("tc_connectivity_probe_up", collector.BY_NAME["tc_connectivity_probe_up"].help, labels=["run_id", "target"])
    family.add_metric(["r1", value], 1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("C", (), {"collect": lambda self: [family]})())
    expected = generate_latest(registry).decode().splitlines()[-1] + "\n"
    assert collector._sample_line("tc_connectivity_probe_up", ("r1", value), 1) == expected


def test_corrupt_artifacts_are_counted_not_fatal(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    (lab.root / "runs/minimal/metadata.json").write_text("{half")
    (lab.root / "state").mkdir()
    (lab.root / "state/kill_switch.json").write_text("garbage")
    text = _scrape(lab.root)
    assert 'tc_exporter_artifact_errors_total{kind="run"} 1.0' in text
    assert "tc_kill_switch_engaged 1.0" in text and "tc_kill_switch_state_valid 0.0" in text


def test_every_counter_in_the_schema_is_a_family():
    props = json.loads((REPO / "schemas/metrics.schema.json").read_text())["properties"]["counters"]["properties"]
    assert {f"tc_run_{name}" for name in props} <= set(collector.BY_NAME)


def test_every_alert_has_summary_description_and_a_runbook_that_exists():
    rules = yaml.safe_load((REPO / "prometheus/rules/opslab.rules.yml").read_text())["groups"][0]["rules"]
    tests = (REPO / "prometheus/tests/opslab.rules.test.yml").read_text()
    for rule in rules:
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"]
        page = ann["runbook_url"].split("/blob/main/", 1)[1]
        assert (REPO / page).is_file(), f"{rule['alert']}: runbook {page} does not exist"
        assert f"alertname: {rule['alert']}" in tests, f"{rule['alert']} has no promtool unit test"


@pytest.mark.parametrize("host", ["localhost.example", "not an ip"])
def test_serve_refuses_a_bad_host(lab, host):
    result = lab("metrics", "serve", "--host", host)
    assert result.code == 2 and "--host" in result.err


def test_metrics_reference_docs_are_current():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "scripts/gen_metrics_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture()
def exporter(lab):
    """A real exporter on a free loopback port over a root holding one initialized run."""
    import threading

    from opslab.metrics.server import MetricsServer

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    server = MetricsServer(lab.root, port=0)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    thread.join(10)


def test_served_scrapes_are_whole_and_the_warm_one_reuses_the_rendered_families(exporter):
    import urllib.request

    bodies = []
    for _ in range(2):
        with urllib.request.urlopen(f"{exporter.url}/metrics", timeout=10) as resp:
            body = resp.read()
            assert int(resp.headers["Content-Length"]) == len(body)
        bodies.append(body.decode())
    for body in bodies:
        assert body.startswith("# HELP tc_run_info") and 'tc_run_status{run_id="minimal",status="initialized"} 1.0' in body
    assert "tc_exporter_scrapes_total 1.0" in bodies[0] and "tc_exporter_scrapes_total 2.0" in bodies[1]
    assert bodies[1].startswith(exporter.collector._rendered.decode())


def test_the_exporter_reads_the_artifacts_at_start_not_at_the_first_scrape(exporter):
    import time

    deadline = time.monotonic() + 30
    while exporter.collector._rendered is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exporter.collector._rendered is not None and exporter.collector.scrapes == 0
    assert b'tc_run_status{run_id="minimal",status="initialized"} 1.0' in exporter.collector._rendered


def test_the_exporters_own_families_render_as_prometheus_client_renders_them(lab):
    from prometheus_client import CollectorRegistry, generate_latest

    col = collector.ArtifactCollector(lab.root)
    col.errors["run"] = 2
    ours = col.exposition()[1].decode().splitlines()
    families = collector._families(collector.EXPORTER_FAMILIES, col.exporter_samples(0.0))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("C", (), {"collect": lambda self: families})())
    theirs = generate_latest(registry).decode().splitlines()
    duration = "tc_exporter_scrape_duration_seconds "
    assert [line for line in ours if not line.startswith(duration)] == [line for line in theirs if not line.startswith(duration)]
    assert 'tc_exporter_artifact_errors_total{kind="run"} 2.0' in ours and "tc_exporter_scrapes_total 1.0" in ours
    assert sum(line.startswith(duration) for line in ours) == 1
