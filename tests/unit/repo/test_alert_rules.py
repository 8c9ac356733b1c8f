"""The alert rules, their promtool tests, the Alertmanager config and the runbook links, checked
against each other and against the real tools (promtool, amtool, the built docs site)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PROM = REPO / "prometheus"
AM = REPO / "alertmanager" / "alertmanager.yml"
RUNBOOK_PREFIX = "{{ $externalLabels.runbook_base }}/"
EXAMPLES = re.compile(r"^(  ## --- examples.*?^  ## --- end of examples ---)$", re.M | re.S)


def _rules() -> list[dict]:
    found = []
    for path in sorted((PROM / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [r for r in group["rules"] if "alert" in r]
    return found


def _tests() -> list[dict]:
    return yaml.safe_load((PROM / "tests" / "opslab.rules.test.yml").read_text())["tests"]


def _duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


ALERTS = _rules()
NAMES = [r["alert"] for r in ALERTS]


def test_every_alert_is_labelled_annotated_and_unique():
    assert len(NAMES) == len(set(NAMES))
    for rule in ALERTS:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["labels"]["area"], rule["alert"]
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], rule["alert"]
        assert ann["runbook_url"].startswith(RUNBOOK_PREFIX + "runbooks/") and ann["runbook_url"].endswith("/"), rule["alert"]


@pytest.mark.parametrize("rule", ALERTS, ids=NAMES)
def test_every_alert_has_promtool_cases_for_firing_holding_and_resolving(rule):
    """Per alert: a case where it fires; an empty case after a firing one (resolved); an empty
    case before it (and for a `for:` rule, one within `for:` of the firing time: holding)."""
    name = rule["alert"]
    hold = _duration_s(rule.get("for", "0s"))
    ok = False
    for case in _tests():
        checks = sorted((_duration_s(c["eval_time"]), bool(c["exp_alerts"])) for c in case["alert_rule_test"] if c["alertname"] == name)
        firing = [t for t, fires in checks if fires]
        if not firing:
            continue
        first = firing[0]
        before = [t for t, fires in checks if not fires and t < first]
        after = [t for t, fires in checks if not fires and t > first]
        holding = not hold or any(first - t <= hold for t in before)
        ok = ok or (bool(before) and bool(after) and holding)
    assert ok, f"{name}: needs a promtool case with a quiet time before, a firing time, a resolved time after (and one within for: {hold}s)"


def test_every_target_down_rule_has_an_absent_companion():
    exprs = [r["expr"] for r in ALERTS]
    down = [m.group(1) for e in exprs if (m := re.fullmatch(r"(up\{[^}]*\}) == 0", e.strip()))]
    assert down, "no target-down rule found"
    for selector in down:
        assert f"absent({selector})" in exprs, f"{selector} == 0 has no absent() companion"
    assert "absent(tc_kill_switch_engaged)" in exprs


def test_prometheus_config_sends_to_alertmanager_and_sets_the_runbook_base():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["global"]["external_labels"]["runbook_base"] == "http://127.0.0.1:8000"
    files = config["alerting"]["alertmanagers"][0]["file_sd_configs"][0]["files"]
    targets = sorted(PROM.glob(files[0]))
    assert targets and all("alertmanager:9093" in p.read_text() for p in targets)
    # the scrape job's file_sd glob must not pick up the Alertmanager target
    assert not any(p.parent == PROM / "targets" for p in targets)


def test_alertmanager_routes_and_inhibitions_name_real_alerts():
    config = yaml.safe_load(AM.read_text())
    receivers = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] == "lab" and "lab" in receivers
    assert {r["matchers"][0] for r in config["route"]["routes"]} == {'severity="critical"', 'severity="warning"'}
    assert all(r["receiver"] in receivers for r in config["route"]["routes"])
    hooks = config["receivers"][0]["webhook_configs"][0]
    assert hooks["url"].endswith("/alerts") and hooks["send_resolved"] is True
    named = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            m = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            if m:
                named |= set(m.group(1).split("|"))
    assert named and named <= set(NAMES), named - set(NAMES)
    kill = next(r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="TcKillSwitchEngaged"'])
    inhibited = [r["alert"] for r in ALERTS if r["labels"]["severity"] == "warning" and r["labels"]["area"] in ("paper", "connectivity")]
    assert 'severity="warning"' in kill["target_matchers"] and set(inhibited) == {"TcProbeDown", "TcStaleRun"}


def _amtool(path: Path) -> subprocess.CompletedProcess:
    if not shutil.which("amtool"):
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager; .ci/run installs it)")
    return subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)


def test_amtool_accepts_the_config(tmp_path):
    result = _amtool(AM)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_commented_example_receivers_are_valid_when_uncommented(tmp_path):
    text = AM.read_text()
    block = EXAMPLES.search(text)
    assert block, "the examples block is missing"
    uncommented = re.sub(r"^  # ", "  ", block.group(1), flags=re.M)
    (tmp_path / "am.yml").write_text(text.replace(block.group(1), uncommented))
    receivers = {r["name"] for r in yaml.safe_load((tmp_path / "am.yml").read_text())["receivers"]}
    assert receivers == {"lab", "email", "slack", "pagerduty"}
    result = _amtool(tmp_path / "am.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 receivers" in result.stdout


def test_promtool_checks_and_unit_tests_pass():
    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run installs it)")
    for args in (["check", "config", "--syntax-only", str(PROM / "prometheus.yml")],
                 ["check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml")))],
                 ["test", "rules", str(PROM / "tests" / "opslab.rules.test.yml")]):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr
    return out


def _pages() -> dict[str, list[str]]:
    """runbook page (site path) -> alerts pointing at it."""
    pages: dict[str, list[str]] = {}
    for rule in ALERTS:
        pages.setdefault(rule["annotations"]["runbook_url"][len(RUNBOOK_PREFIX):], []).append(rule["alert"])
    return pages


def test_every_runbook_url_is_a_page_of_the_built_site(site):
    for page, alerts in _pages().items():
        assert (site / page / "index.html").is_file(), f"{alerts}: runbook {page} is not a page of the built docs"


def test_every_runbook_links_back_to_exactly_the_alerts_pointing_at_it(site):
    for page, alerts in _pages().items():
        source = REPO / "docs" / (page.rstrip("/") + ".md")
        linked = re.findall(r"\]\(\.\./alerts\.md#([a-z0-9]+)\)", source.read_text())
        assert sorted(linked) == sorted(a.lower() for a in alerts), f"{source.name} links {linked}, alerts pointing at it: {alerts}"


def test_the_alerts_page_describes_every_alert_and_nothing_else(site):
    html = (site / "alerts" / "index.html").read_text()
    text = (REPO / "docs" / "alerts.md").read_text()
    assert sorted(re.findall(r"^### (Tc\w+)$", text, re.M)) == sorted(NAMES)
    for name in NAMES:
        assert f'id="{name.lower()}"' in html, f"{name}: no anchor on the alerts page"


def test_compose_runs_alertmanager_and_the_receiver_where_the_configs_point():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    am, receiver = compose["alertmanager"], compose["alerts"]
    assert re.fullmatch(r"\$\{TC_ALERTMANAGER_IMAGE:-docker\.io/prom/alertmanager:v\d+\.\d+\.\d+\}", am["image"])
    assert am["ports"] == ["127.0.0.1:${TC_ALERTMANAGER_PORT:-9093}:9093"]
    assert receiver["ports"] == ["127.0.0.1:${TC_ALERTS_PORT:-9095}:9095"]
    for service in (am, receiver):
        assert service["healthcheck"]["test"] and service["healthcheck"]["retries"] > 0
    hook = yaml.safe_load(AM.read_text())["receivers"][0]["webhook_configs"][0]["url"]
    assert hook == "http://alerts:9095/alerts" and receiver["command"][-4:] == ["--host", "0.0.0.0", "--port", "9095"]
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro,Z" in am["volumes"]
    assert "./prometheus/alertmanagers:/etc/prometheus/alertmanagers:ro,Z" in compose["prometheus"]["volumes"]
    from tasklib import container

    assert {"alertmanager", "alerts"} <= set(container._health_urls())
