"""Real parts: `make demo` into a temp root, `tc metrics serve`, Debian's Prometheus binary scraping it,
and EVERY dashboard panel's expression answered with data through Prometheus's HTTP API."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

import dashboard_queries
from conftest import REPO, add_matrix_evidence, tc_env

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _wait(what: str, check, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what} ({last})")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("obs") / "artifacts"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "SOURCE_DATE_EPOCH")}
    env["TC_ARTIFACTS_DIR"] = str(root)
    proc = subprocess.run(["make", "--no-print-directory", "demo", "RUNTIME=native"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    add_matrix_evidence(root)
    return root


@pytest.fixture(scope="module")
def exporter(demo_root):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "opslab", "metrics", "serve", "--port", str(port)], cwd=REPO, env=tc_env(demo_root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "/metrics" in proc.stdout.readline()
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory):
    if not PROMETHEUS:
        pytest.skip("Debian's prometheus binary is not installed (apt-get install prometheus; .ci/run installs it)")
    work = tmp_path_factory.mktemp("prom")
    config = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "prometheus/rules", work / "rules")
    (work / "targets").mkdir()
    (work / "targets/opslab.json").write_text(json.dumps([{"targets": [exporter], "labels": {"service": "opslab"}}]))
    port = _free_port()
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("prometheus ready", lambda: _get(f"{base}/-/ready") is not None)

        def target_up() -> bool:
            targets = json.loads(_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
            return any(t["health"] == "up" and t["labels"]["job"] == "opslab" for t in targets)

        _wait("the exporter target to be up", target_up)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("title, expr", dashboard_queries.panel_queries(), ids=[f"{t}:{e[:40]}" for t, e in dashboard_queries.panel_queries()])
def test_every_dashboard_query_has_data(prometheus, title, expr):
    """No exceptions: every panel of grafana/dashboards/opslab.json answers with data after `make demo`."""
    def has_data() -> bool:
        answer = json.loads(_get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        assert answer["status"] == "success", answer
        return bool(answer["data"]["result"])

    _wait(f"data for panel {title!r}: {expr}", has_data, timeout=30)


def test_the_run_variable_lists_the_demo_runs(prometheus):
    """label_values(tc_run_info, run_id) is Grafana's call of Prometheus's label values API."""
    run = {v["name"]: v for v in dashboard_queries.load()["templating"]["list"]}["run"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", run["query"]).groups()

    def values() -> list[str]:
        return json.loads(_get(f"{prometheus}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": metric})))["data"]

    _wait("run ids in Prometheus", lambda: {"demo", "paper-demo"} <= set(values()), timeout=30)


@pytest.mark.parametrize("name, expr", dashboard_queries.annotation_queries())
def test_every_dashboard_annotation_is_valid_promql(prometheus, name, expr):
    """Annotations mark changes (a kill switch event, a drill finishing): valid queries, data only when something changed."""
    answer = json.loads(_get(f"{prometheus}/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": expr, "start": time.time() - 600, "end": time.time(), "step": "15"})))
    assert answer["status"] == "success", answer


def test_exporter_output_passes_promtool_and_healthz(exporter):
    assert _get(f"http://{exporter}/healthz") == b"ok\n"
    body = _get(f"http://{exporter}/metrics")
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0 and check.stdout == b"" and check.stderr == b"", check.stdout + check.stderr
    text = body.decode()
    for family in ("tc_run_status", "tc_run_orders_submitted_total", "tc_kill_switch_engaged", "tc_reconciliation_mismatches",
                   "tc_connectivity_ready", "tc_connectivity_probe_up", "tc_drill_detected", "tc_exporter_scrape_duration_seconds"):
        assert f"\n{family}" in text, family


def test_the_one_encoder_parses_as_prometheus_client_and_serve_equals_dump(demo_root):
    """`tc metrics serve` and `tc metrics dump` share one encoder (equal by construction); its
    output must parse with prometheus_client's parser, every sample under a declared family."""
    from prometheus_client.parser import text_string_to_metric_families

    from opslab.metrics.cache import ArtifactCollector
    from opslab.metrics.catalog import BY_NAME
    from opslab.metrics.server import dump

    collector = ArtifactCollector(demo_root)
    ours = collector.rendered_artifacts().decode()
    assert collector.errors == {}
    dumped = dump(demo_root).body
    assert dumped.startswith(ours)
    families = list(text_string_to_metric_families(dumped))
    assert len(ours.splitlines()) > 100
    assert {f.name for f in families} <= set(BY_NAME)
    assert all(f.samples or f.name.startswith("tc_") for f in families)
