"""The exporter: families from artifacts, cache by change, corrupt artifacts counted not fatal."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, SPECS
from opslab import contracts, fs
from opslab.metrics import cache, catalog, exposition
from opslab.metrics.server import dump


def _scrape(root: Path) -> str:
    return dump(root).body


def test_scrape_of_an_initialized_run_and_empty_state(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    text = _scrape(lab.root)
    assert 'tc_run_status{run_id="minimal",status="initialized"} 1.0' in text
    assert 'tc_run_dataset_rows{run_id="minimal"} 120.0' in text  # a size: a gauge, not a counter
    assert "tc_kill_switch_engaged 0.0" in text
    assert 'tc_artifacts_verification_problems{run_id="minimal"} 0.0' in text


def test_warm_scrape_reads_nothing_and_a_change_is_picked_up(lab, monkeypatch):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = cache.ArtifactCollector(lab.root)
    col.samples()
    calls = []
    real = cache.run_samples
    monkeypatch.setattr(cache, "run_samples", lambda folder: calls.append(folder) or real(folder))
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
    col = cache.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    sweeps = _count_sweeps(col, monkeypatch)
    checked = []
    real_check = col._check_run
    monkeypatch.setattr(col, "_check_run", lambda folder, st=None, written=False: checked.append(Path(folder).name) or real_check(folder, st, written))
    probe = lab("connectivity", "probe", "--spec", str(SPECS / "minimal.json"), "--url", "http://127.0.0.1:9/")  # down: exit 4
    assert probe.code == 4 and lab("killswitch", "engage", "--reason", "x").code == 0
    text = col.rendered_artifacts().decode()
    assert sweeps == [] and set(checked) == {"minimal"}, "only the run the feed named is looked at"
    assert 'tc_connectivity_probe_up{run_id="minimal",target="http://127.0.0.1:9/"} 0.0' in text
    assert "\ntc_kill_switch_engaged 1.0\n" in text and 'tc_run_info{engine_kind="backtest",run_id="demo"' in text


def test_a_file_written_deep_in_a_run_is_reread_though_the_run_folder_did_not_change(lab, monkeypatch):
    """A live node writes node/heartbeat.json for hours between two manifests: the run folder's own
    modification time stays put, the change feed names the file, and the exporter must re-read it."""
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(lab.root))  # this process writes into the lab's root (and its change feed)
    run = lab.root / "runs" / "minimal"
    life = {"state": "running", "halts": 0, "bounds": {"heartbeat_seconds": 2}}
    fs.write_json(run / contracts.artifact("node_lifecycle").path, life)
    col = cache.ArtifactCollector(lab.root)
    assert '\ntc_node_up{run_id="minimal"} 1.0\n' in col.rendered_artifacts().decode()
    folder_mtime = run.stat().st_mtime_ns
    fs.write_json(run / contracts.artifact("node_lifecycle").path, {**life, "state": "stopped"})
    assert run.stat().st_mtime_ns == folder_mtime, "the write landed in node/, not in the run folder"
    assert '\ntc_node_up{run_id="minimal"} 0.0\n' in col.rendered_artifacts().decode()


def test_the_feed_starting_over_or_missing_means_one_full_sweep(lab, monkeypatch):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = cache.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    sweeps = _count_sweeps(col, monkeypatch)
    (lab.root / ".generation").unlink()  # e.g. an operator cleaned up
    assert lab("run", "init", "--spec", str(SPECS / "demo.yaml")).code == 0  # writes a new feed
    assert 'run_id="demo"' in col.rendered_artifacts().decode() and sweeps == [1]
    col.rendered_artifacts()
    assert sweeps == [1], "after the sweep the new feed is followed"


def test_the_feed_rotates_past_its_size_limit_and_readers_follow(lab, monkeypatch):
    from opslab import fs

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = cache.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(lab.root))
    monkeypatch.setattr(fs, "GENERATION_MAX_BYTES", 64)
    before = (lab.root / ".generation").read_bytes()
    for i in range(6):  # ~40 bytes a line: rotates at least once
        fs.write_atomic(lab.root / "drills" / f"d{i}" / "note.txt", f"{i}\n".encode())
    after = (lab.root / ".generation").read_bytes()
    assert after.startswith(b"#") and not after.startswith(before[:20]), "a rotated feed starts with its own random first line"
    assert (lab.root / ".generation").stat().st_size <= 64 + 64
    assert lab("killswitch", "engage", "--reason", "after rotation").code == 0
    assert "\ntc_kill_switch_engaged 1.0\n" in col.rendered_artifacts().decode()


def test_an_edit_made_outside_tc_shows_up_at_the_next_sweep(lab, monkeypatch):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    col = cache.ArtifactCollector(lab.root)
    col.rendered_artifacts()
    (lab.root / "state").mkdir()
    (lab.root / "state/kill_switch.json").write_text("hand-edited garbage")  # no feed line
    # The kill switch is re-checked on every scrape (two stats), not only at a sweep: fail closed at once.
    assert "\ntc_kill_switch_engaged 1.0\n" in col.rendered_artifacts().decode()
    (lab.root / "runs/minimal/metadata.json").unlink()  # replaced by hand (the folder's mtime moves), no feed line either
    (lab.root / "runs/minimal/metadata.json").write_text("{}")
    assert 'tc_exporter_artifact_errors_total{kind="run"} 0.0' in b"".join(col.exposition()).decode()  # not seen yet
    monkeypatch.setattr(col, "SWEEP_EVERY_S", 0.0)
    assert 'tc_exporter_artifact_errors_total{kind="run"} 1.0' in b"".join(col.exposition()).decode()  # the sweep sees it


@pytest.mark.parametrize("value", ['plain', 'with "quotes"', "back\\slash", "new\nline", "ünïcode"])
def test_sample_lines_match_prometheus_client(value):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("tc_connectivity_probe_up", catalog.BY_NAME["tc_connectivity_probe_up"].help, labels=["run_id", "target"])
    family.add_metric(["r1", value], 1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(type("C", (), {"collect": lambda self: [family]})())
    expected = generate_latest(registry).decode().splitlines()[-1] + "\n"
    assert exposition.sample_line("tc_connectivity_probe_up", ("r1", value), 1) == expected


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
    assert {f"tc_run_{name}" for name in props} <= set(catalog.BY_NAME)




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
    from opslab.metrics.server import MetricsServer

    import time

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    server = MetricsServer(lab.root, port=0).start()
    deadline = time.monotonic() + 30
    while server.collector.warming is not False and time.monotonic() < deadline:  # the start-up read, in the background
        time.sleep(0.02)
    yield server
    server.stop()


def _get(url: str, headers: dict | None = None) -> tuple[dict, bytes]:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
        return dict(resp.headers), resp.read()


def test_served_scrapes_are_whole_and_counted(exporter):
    bodies = []
    for _ in range(2):
        headers, body = _get(f"{exporter.url}/metrics")
        assert int(headers["Content-Length"]) == len(body) and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        bodies.append(body.decode())
    for body in bodies:
        assert body.startswith("# HELP tc_run_info") and 'tc_run_status{run_id="minimal",status="initialized"} 1.0' in body
    assert "tc_exporter_scrapes_total 1.0" in bodies[0] and "tc_exporter_scrapes_total 2.0" in bodies[1]
    assert 'tc_build_info{nautilus_trader="' in bodies[0]


def test_openmetrics_and_gzip_are_negotiated_and_parse(exporter):
    import gzip

    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    headers, body = _get(f"{exporter.url}/metrics", {"Accept": accept, "Accept-Encoding": "gzip"})
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["tc_exporter_scrapes"].type == "counter" and families["tc_run_status"].samples
    _, plain = _get(f"{exporter.url}/metrics")
    assert len(plain) > 3 * len(body)  # gzip pays off
    assert {f.name for f in parse_text(plain.decode())} >= {"tc_run_status", "tc_exporter_scrapes"}


def test_keep_alive_serves_several_scrapes_on_one_connection(exporter):
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(exporter.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        for n in (1, 2, 3):
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.version == 11 and resp.getheader("Connection", "").lower() != "close"
            assert f"tc_exporter_scrapes_total {n}.0" in resp.read().decode()
        sock = conn.sock
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n" and conn.sock is sock  # the same socket all along
    finally:
        conn.close()


def test_a_scrape_during_the_start_up_read_answers_at_once_with_warming(lab, monkeypatch):
    import time

    from opslab.metrics import cache as cache_module
    from opslab.metrics.server import MetricsServer

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    for i in range(3):
        shutil.copytree(lab.root / "runs/minimal", lab.root / "runs" / f"copy-{i}")
    slow = cache_module.ArtifactCollector._check_run

    def slowly(self, folder, st=None):
        time.sleep(0.5)
        return slow(self, folder, st)

    monkeypatch.setattr(cache_module.ArtifactCollector, "_check_run", slowly)
    server = MetricsServer(lab.root, port=0).start()
    try:
        start = time.monotonic()
        _, body = _get(f"{server.url}/metrics")
        assert time.monotonic() - start < 1.5  # about one run's read (0.5 s here), never the whole start-up read
        assert b"\ntc_exporter_warming 1.0\n" in body
        deadline = time.monotonic() + 30
        while b"\ntc_exporter_warming 0.0\n" not in body and time.monotonic() < deadline:
            time.sleep(0.2)
            _, body = _get(f"{server.url}/metrics")
        assert b"\ntc_exporter_warming 0.0\n" in body and b'run_id="copy-2"' in body
    finally:
        server.stop()


def test_a_non_loopback_host_is_flagged_as_exposed_and_loopback_is_not():
    from opslab.metrics.server import MetricsServer

    assert MetricsServer(Path("/nonexistent"), "0.0.0.0", 0).exposed
    assert not MetricsServer(Path("/nonexistent"), "127.0.0.1", 0).exposed
    assert not MetricsServer(Path("/nonexistent"), "::1", 0).exposed


def test_cardinality_budget_1000_runs_give_at_most_3000_series(lab):
    from prometheus_client.parser import text_string_to_metric_families

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    assert lab("reconcile", "--spec", str(SPECS / "minimal.json"), "--expected", str(REPO / "fixtures/reconciliation/expected.json"),
               "--observed", str(REPO / "fixtures/reconciliation/expected.json")).code == 0
    for i in range(999):
        shutil.copytree(lab.root / "runs/minimal", lab.root / "runs" / f"run-{i:04d}")
    text = dump(lab.root).body
    series = sum(len(f.samples) for f in text_string_to_metric_families(text))
    assert series <= 3000, series
    shown = {s.labels["run_id"] for f in text_string_to_metric_families(text) if f.name == "tc_run_status" for s in f.samples}
    assert len(shown) == 50
    assert 'tc_runs{engine_kind="backtest",status="initialized"} 1000.0' in text
    assert 'tc_exporter_runs{shown="aggregate_only"} 950.0' in text


def test_running_and_failed_runs_are_always_shown_per_run(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    meta = json.loads((lab.root / "runs/minimal/metadata.json").read_text())
    for i, status in enumerate(["completed"] * 5 + ["failed", "completed"]):
        folder = lab.root / "runs" / f"r{i}"
        shutil.copytree(lab.root / "runs/minimal", folder)
        (folder / "metadata.json").write_text(json.dumps({**meta, "run_id": f"r{i}", "status": status, "updated_at": f"2020-01-01T00:00:0{i}Z"}))
    text = dump(lab.root, per_run=2).body
    shown = set(re.findall(r'tc_run_status\{run_id="([^"]+)"', text))
    assert shown == {"minimal", "r6", "r5"}, shown  # the newest two (minimal, r6), plus failed r5
    (lab.root / "runs/r0/metadata.json").write_text(json.dumps({**meta, "run_id": "r0", "status": "running", "updated_at": "2019-01-01T00:00:00Z"}))
    shown = set(re.findall(r'tc_run_status\{run_id="([^"]+)"', dump(lab.root, per_run=2).body))
    assert shown == {"minimal", "r6", "r5", "r0"}, shown  # an old run that says running is shown too


def test_label_values_are_bounded_in_length():
    from opslab.metrics.exposition import MAX_LABEL_VALUE, sample_line

    long_a, long_b = "http://127.0.0.1/" + "a" * 100_000, "http://127.0.0.1/" + "a" * 99_999 + "b"
    line_a = sample_line("tc_connectivity_probe_up", ("r1", long_a), 1)
    line_b = sample_line("tc_connectivity_probe_up", ("r1", long_b), 1)
    assert len(line_a) < 2 * MAX_LABEL_VALUE + 100 and line_a != line_b


def test_the_exporters_own_families_parse_with_prometheus_client(lab):
    from prometheus_client.parser import text_string_to_metric_families

    col = cache.ArtifactCollector(lab.root)
    col.errors["run"] = 2
    ours = col.exposition()[1].decode()
    parsed = {f.name: f for f in text_string_to_metric_families(ours)}
    assert set(parsed) == {"tc_build_info", "tc_exporter_warming", "tc_exporter_runs", "tc_exporter_scrape_duration_seconds",
                           "tc_exporter_artifact_errors", "tc_exporter_scrapes"}
    assert parsed["tc_exporter_artifact_errors"].type == "counter"
    errors = {s.labels["kind"]: s.value for s in parsed["tc_exporter_artifact_errors"].samples}
    assert errors["run"] == 2.0 and parsed["tc_exporter_scrapes"].samples[0].value == 1.0


def test_venue_fault_labels_are_the_fault_switchs_names():
    from opslab.venue import faults
    from opslab.metrics import extract

    assert extract.venue_faults() == list(faults.FAULT_NAMES)
    assert faults.parse_faults(["silent_market", "rate_limit=5/2"]) == {"silent_market": True, "rate_limit": {"weight": 5, "window_s": 2}}
    assert faults.active_faults({"latency_ms": 5, "drop": False, "silent_market": True}) == ["latency", "silent_market"]
    with pytest.raises(faults.InputError, match="bad value for silent_market"):
        faults.parse_faults(["silent_market=1"])


def test_venue_reject_codes_exported_at_zero_are_the_fault_switchs():
    from opslab.venue import faults
    from opslab.metrics import extract

    assert extract.venue_reject_codes() == [str(code) for code in faults.REJECT_CODES]


def test_a_running_runs_work_in_progress_is_not_a_verification_problem(lab, monkeypatch):
    """A live node writes heartbeats after its manifest for hours: while the run says running, files
    newer than or missing from the manifest are its work in progress; a link is a problem anyway."""
    from opslab.verify import quick_run_problems

    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(lab.root))
    run = lab.root / "runs" / "minimal"
    fs.write_json(run / contracts.artifact("node_heartbeat").path, {"state": "running"})
    assert quick_run_problems(run, running=True) == []
    assert quick_run_problems(run) == ["runs/minimal/node/heartbeat.json: not in manifest.json"]
    (run / "node" / "evil").symlink_to("/etc/passwd")
    assert quick_run_problems(run, running=True) == ["runs/minimal/node/evil: is a symlink (tampering: tc never writes or follows links)"]
