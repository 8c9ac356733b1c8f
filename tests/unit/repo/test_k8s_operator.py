"""The prometheus-operator overlay is correct by construction (issue 30, item 2): its ServiceMonitor and
PrometheusRule come from one settings file, so the job Prometheus assigns to the exporter's samples is
the job every rule selects, both carry the `release` label the operator selects them by, and every
runbook link is an absolute URL of a page in docs/runbooks/. The checks resolve the job the way the
Prometheus Operator does (the Service's name, then jobLabel, then the endpoint's relabelings) over the
rendered overlay, and are each shown the broken case, so none passes vacuously."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO
from opslab import k8s
from opslab.errors import InputError
from tasklib import k8s as k8s_tasks

RUNBOOKS = REPO / "docs" / "runbooks"
OTHER = k8s.OperatorSettings(job="tc-exporter", release="prom-stack", runbook_base="https://docs.example.org/opslab")


@pytest.fixture(scope="module")
def settings() -> k8s.OperatorSettings:
    return k8s.load_operator_settings(k8s_tasks.OPERATOR_SETTINGS)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not found: it renders the Kustomize overlays")
    return k8s_tasks.documents(k8s_tasks.kustomize("prometheus-operator"))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def monitor_jobs(monitor: dict[str, Any], services: list[dict[str, Any]]) -> set[str]:
    """The `job` values the Prometheus Operator gives the samples this ServiceMonitor scrapes: per
    selected Service and endpoint, the Service's name, replaced by the Service's value of the jobLabel
    label when it has one, then by the endpoint's relabelings that write `job`."""
    spec = monitor["spec"]
    wanted = spec["selector"].get("matchLabels", {})
    namespaces = spec.get("namespaceSelector", {}).get("matchNames") or [monitor["metadata"].get("namespace")]
    jobs = set()
    for svc in services:
        labels = svc["metadata"].get("labels", {})
        if svc["metadata"].get("namespace") not in namespaces or any(labels.get(k) != v for k, v in wanted.items()):
            continue
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in {p.get("name") for p in svc["spec"]["ports"]}, f"{svc['metadata']['name']} has no port {endpoint['port']}"
            job = labels.get(spec.get("jobLabel", ""), svc["metadata"]["name"]) if spec.get("jobLabel") else svc["metadata"]["name"]
            for relabel in endpoint.get("relabelings", []):
                if relabel.get("targetLabel") != "job":
                    continue
                # Only the form this overlay uses is resolved here; any other is a failure to look at.
                assert relabel.get("action", "replace").lower() == "replace" and not relabel.get("sourceLabels"), relabel
                job = relabel["replacement"]
            jobs.add(job)
    return jobs


def rule_jobs(rule_doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(alert, operator, job) for every job matcher in the PrometheusRule's expressions."""
    return [(r.get("alert") or r.get("record"), op, value) for g in rule_doc["spec"]["groups"] for r in g["rules"]
            for op, value in k8s.job_matchers(str(r["expr"]))]


def annotations(rule_doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(r.get("alert") or r.get("record"), key, str(value)) for g in rule_doc["spec"]["groups"] for r in g["rules"]
            for key, value in (r.get("annotations") or {}).items()]


def job_problems(monitors: list[dict[str, Any]], services: list[dict[str, Any]], rules: list[dict[str, Any]]) -> list[str]:
    produced = set().union(*(monitor_jobs(m, services) for m in monitors)) if monitors else set()
    return [f"{alert}: job{op}{value!r}: no ServiceMonitor produces it (they produce {sorted(produced)})"
            for doc in rules for alert, op, value in rule_jobs(doc) if op != "=" or value not in produced]


# --- the rendered overlay ------------------------------------------------------------------------

def test_every_job_a_rule_selects_is_the_job_the_service_monitor_produces(rendered, settings):
    monitors, rules, services = of_kind(rendered, "ServiceMonitor"), of_kind(rendered, "PrometheusRule"), of_kind(rendered, "Service")
    assert len(monitors) == 1 and len(rules) == 1
    assert monitor_jobs(monitors[0], services) == {settings.job}
    selected = rule_jobs(rules[0])
    assert {"TcExporterDown", "TcExporterAbsent", "TcDrillsAbsent"} <= {alert for alert, _, _ in selected}
    assert job_problems(monitors, services, rules) == []


def test_the_job_check_finds_the_mismatch_the_overlay_used_to_have(rendered):
    """Without the relabeling the operator names the job after the Service (`metrics`): the
    check must say that every rule selecting job="opslab" would never match."""
    services, rules = of_kind(rendered, "Service"), of_kind(rendered, "PrometheusRule")
    bare = yaml.safe_load(yaml.safe_dump(of_kind(rendered, "ServiceMonitor")[0]))
    del bare["spec"]["endpoints"][0]["relabelings"]
    assert monitor_jobs(bare, services) == {"metrics"}
    problems = job_problems([bare], services, rules)
    assert len(problems) == len(rule_jobs(rules[0])) >= 3 and all("no ServiceMonitor produces it" in p for p in problems)
    labelled = yaml.safe_load(yaml.safe_dump(bare))
    labelled["spec"]["jobLabel"] = "app.kubernetes.io/name"
    assert monitor_jobs(labelled, services) == {"exporter"}


def test_monitor_and_rule_carry_the_release_label_from_the_settings(rendered, settings):
    for doc in of_kind(rendered, "ServiceMonitor") + of_kind(rendered, "PrometheusRule"):
        assert doc["metadata"]["labels"]["release"] == settings.release, doc["kind"]
    kustomization = yaml.safe_load((k8s_tasks.OPERATOR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "labels" not in kustomization and "commonLabels" not in kustomization  # settings.yaml is the one place


def test_every_runbook_url_is_absolute_and_names_a_runbook_page(rendered, settings):
    rule = of_kind(rendered, "PrometheusRule")[0]
    assert not [a for a in annotations(rule) if "$externalLabels" in a[2]]
    urls = [(alert, value) for alert, key, value in annotations(rule) if key == "runbook_url"]
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert len(urls) == len(alerts) > 20
    for alert, url in urls:
        assert url.startswith(settings.runbook_base + "/"), (alert, url)
        page = re.fullmatch(r"/runbooks/([a-z0-9_]+)/", url[len(settings.runbook_base):])
        assert page and (RUNBOOKS / f"{page.group(1)}.md").is_file(), f"{alert}: {url} is not a page of docs/runbooks/"


# --- the generator, with other settings --------------------------------------------------------

def test_the_committed_files_are_current(settings):
    assert k8s_tasks.SERVICE_MONITOR.read_text(encoding="utf-8") == k8s.service_monitor_text(settings), "stale: run `make k8s-render`"
    assert k8s_tasks.PROMETHEUS_RULE.read_text(encoding="utf-8") == k8s.prometheus_rule_text(k8s_tasks.RULES, settings), \
        "stale: run `make k8s-render`"


def test_other_settings_change_both_files_consistently(rendered, settings, tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({"job": OTHER.job, "release": OTHER.release, "runbook_base": OTHER.runbook_base}))
    other = k8s.load_operator_settings(path)
    assert other == OTHER != settings
    monitor = k8s.service_monitor(other)
    rule = k8s.prometheus_rule(sorted(k8s_tasks.RULES.glob("*.yml")), other)
    services = of_kind(rendered, "Service")
    monitor["metadata"]["namespace"] = services[0]["metadata"]["namespace"]  # as the overlay's `namespace:` sets it
    assert monitor_jobs(monitor, services) == {OTHER.job}
    assert {value for _, _, value in rule_jobs(rule)} == {OTHER.job}
    assert job_problems([monitor], services, [rule]) == []
    assert monitor["metadata"]["labels"]["release"] == rule["metadata"]["labels"]["release"] == OTHER.release
    assert all(v.startswith(OTHER.runbook_base + "/runbooks/") for _, k, v in annotations(rule) if k == "runbook_url")
    # The committed monitor paired with a rule for another job is caught: the check is not tautological.
    committed = of_kind(rendered, "ServiceMonitor")
    assert len(job_problems(committed, services, [rule])) == len(rule_jobs(rule))
    assert k8s.service_monitor_text(other) != k8s.service_monitor_text(settings)


def rule_file(tmp_path: Path, expr: str, runbook: str = "{{ $externalLabels.runbook_base }}/runbooks/exporter/") -> Path:
    path = tmp_path / "rules" / "x.rules.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"alert": "X", "expr": expr, "annotations": {"runbook_url": runbook}}]}]}))
    return path


@pytest.mark.parametrize("expr", ['up{job="other"} == 0', 'up{job=~"opslab"} == 0', "up{job!='opslab'}", "up{job = `x`}"])
def test_the_generator_refuses_a_rule_selecting_another_job(tmp_path, settings, expr):
    with pytest.raises(InputError, match=r"x\.rules\.yml: X: expr: job.*expected job=\"opslab\""):
        k8s.prometheus_rule([rule_file(tmp_path, expr)], settings)


def test_the_generator_rewrites_every_job_matcher_and_refuses_other_external_labels(tmp_path):
    rule = k8s.prometheus_rule([rule_file(tmp_path, 'up{job="opslab"} == 0 or up{instance="a", job = "opslab"}')], OTHER)
    assert rule["spec"]["groups"][0]["rules"][0]["expr"] == 'up{job="tc-exporter"} == 0 or up{instance="a", job="tc-exporter"}'
    with pytest.raises(InputError, match=r"X: annotations/runbook_url: uses \$externalLabels"):
        k8s.prometheus_rule([rule_file(tmp_path, "up == 0", "{{ $externalLabels.cluster }}/x")], OTHER)


# --- bad settings ----------------------------------------------------------------------------------

GOOD = {"job": "opslab", "release": "kube-prometheus-stack", "runbook_base": "http://127.0.0.1:8000"}


@pytest.mark.parametrize(("field", "value"), [
    ("job", ""), ("job", 'op"slab'), ("job", "op\\slab"), ("job", "opslab\n"), ("job", 7),
    ("release", "-stack"), ("release", "a" * 64), ("release", "kube prometheus"),
    ("runbook_base", "http://127.0.0.1:8000/"), ("runbook_base", "ftp://docs.example.org"), ("runbook_base", "docs.example.org"),
    ("runbook_base", "https://x.org/{{ $labels.job }}"), ("runbook_base", "https://x.org/a b"),
])
def test_a_bad_value_is_one_line_naming_the_file_and_the_field(tmp_path, field, value):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({**GOOD, field: value}))
    with pytest.raises(InputError) as exc:
        k8s.load_operator_settings(path)
    assert str(exc.value).startswith(f"{path}: {field}: expected ") and "\n" not in str(exc.value).rstrip("'")
    assert exc.value.exit_code == 2
    with pytest.raises(InputError, match=f"^settings: {field}: expected "):
        k8s.OperatorSettings(**{**GOOD, field: value})


@pytest.mark.parametrize(("doc", "message"), [
    ({"job": "opslab", "release": "r"}, r": /: missing required field 'runbook_base'"),
    ({**GOOD, "jobs": "x"}, r": /: unknown field"),
    (["opslab"], r": /: expected a mapping with the fields job, release, runbook_base"),
])
def test_a_missing_or_unknown_field_is_named(tmp_path, doc, message):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=re.escape(str(path)) + message):
        k8s.load_operator_settings(path)


def test_make_k8s_render_exits_2_on_bad_settings_before_writing_anything(tmp_path, monkeypatch, capsys):
    from invoke import Context

    bad = tmp_path / "settings.yaml"
    bad.write_text(yaml.safe_dump({**GOOD, "runbook_base": "http://docs/"}))
    monkeypatch.setattr(k8s_tasks, "OPERATOR_SETTINGS", bad)
    monkeypatch.setattr(k8s_tasks, "_write", lambda *a: pytest.fail("wrote a file despite bad settings"))
    with pytest.raises(SystemExit) as exc:
        k8s_tasks.k8s_render(Context(), out=str(tmp_path / "out"))
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"error: {bad}: runbook_base: expected an http:// or https:// URL without a trailing slash, " \
                                      "quotes, braces or spaces, got 'http://docs/'\n"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not found")
@pytest.mark.parametrize("which", ["committed", "other"])
def test_the_generated_rules_pass_promtool(tmp_path, settings, which):
    rule = k8s.prometheus_rule(sorted(k8s_tasks.RULES.glob("*.yml")), settings if which == "committed" else OTHER)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
