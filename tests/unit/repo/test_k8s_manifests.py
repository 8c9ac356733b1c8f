"""deploy/k8s and deploy/gitops without a cluster: every overlay renders with `kubectl kustomize`,
validates with kubernetes-validate --strict against several Kubernetes versions, custom resources
validate against their official CRDs (../shared/k8s-crds), and policy checks hold over the
rendered YAML. Each checker is also shown a bad manifest, so none of them can pass vacuously."""

from __future__ import annotations

import copy
import functools
import json
import shutil
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest
import yaml

from conftest import REPO, SPECS
from opslab import k8s

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (requirements/dev.lock)")

if not shutil.which("kubectl"):
    pytest.skip("kubectl not found: it renders the Kustomize overlays (installed on the project's machines' base image)",
                allow_module_level=True)

from tasklib import k8s as k8s_tasks  # noqa: E402 - needs kubectl only when called

# Three Kubernetes minor versions: the oldest the Job features used here are on by default in
# (podFailurePolicy, backoffLimitPerIndex), the one CONTAINERS-HERE.md names, and a newer one.
KUBE_VERSIONS = ("1.31.0", "1.33.0", "1.35.0")
CRDS = REPO.parent / "shared" / "k8s-crds"
BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1"}
WORKLOAD_KINDS = {"Deployment", "Job", "CronJob", "Pod"}


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict[str, Any]]]:
    return {name: k8s_tasks.documents(k8s_tasks.kustomize(name)) for name in k8s_tasks.OVERLAYS}


@pytest.fixture(scope="module")
def run_docs() -> list[dict[str, Any]]:
    """What `make k8s-render` renders for runs: an Indexed set with a readiness Job, one spec, a kill switch Job."""
    sweep, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml", SPECS / "connectivity.yaml", SPECS / "minimal.json"]), "sweep", 2)
    single, _ = k8s.run_set(k8s.load_specs([SPECS / "paper-demo.yaml"]), "paper")
    job = k8s.killswitch_job("engage", "venue incident 42")
    return [*sweep, *single, job, k8s.job_pod(single[1])]


def by(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def configmap(docs: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """A generated ConfigMap by its name before the content hash suffix."""
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].rsplit("-", 1)[0] == prefix)


# --- rendering -------------------------------------------------------------------------------------

def test_every_overlay_renders_its_own_set_of_resources(overlays):
    kinds = {name: {(d["kind"], d["metadata"]["name"]) for d in docs} for name, docs in overlays.items()}
    for name in ("exporter", "prometheus", "alertmanager", "alerts", "grafana"):
        assert ("Deployment", name) in kinds["local"]
    assert ("CronJob", "drills") in kinds["local"]
    assert by(overlays["local"], "PersistentVolumeClaim", "opslab-artifacts")["spec"]["accessModes"] == ["ReadWriteOnce"]
    # podman: only kinds `podman kube play` runs, and only what CI can run (no Grafana/Alertmanager image there)
    assert {k for k, _ in kinds["podman"]} == {"ConfigMap", "PersistentVolumeClaim", "Deployment"}
    assert {n for k, n in kinds["podman"] if k == "Deployment"} == {"exporter", "prometheus"}
    # prometheus-operator: monitors and rules instead of the plain Prometheus
    assert ("ServiceMonitor", "exporter") in kinds["prometheus-operator"] and ("PrometheusRule", "opslab") in kinds["prometheus-operator"]
    # (the receiver stays: the operator's Alertmanager can deliver to it)
    assert not {n for k, n in kinds["prometheus-operator"] if k == "Deployment"} - {"exporter", "alerts"}
    assert configmap(overlays["prometheus-operator"], "grafana-dashboards")["metadata"]["labels"]["grafana_dashboard"] == "1"


@pytest.mark.parametrize("overlay", k8s_tasks.OVERLAYS)
def test_every_overlay_builds_with_the_default_load_restrictor(overlay):
    """Plain `kubectl kustomize`, no flags: what `kubectl apply -k`, Argo CD and Flux do (issue 30)."""
    import subprocess

    assert k8s_tasks.KUSTOMIZE == ["kubectl", "kustomize"]
    res = subprocess.run(["kubectl", "kustomize", str(k8s_tasks.K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert k8s_tasks.documents(res.stdout)


@pytest.mark.parametrize("prefix, source", [
    ("prometheus-config", "prometheus/prometheus.yml"), ("prometheus-rules", "prometheus/rules/opslab.rules.yml"),
    ("alertmanager-config", "alertmanager/alertmanager.yml"), ("grafana-datasources", "grafana/provisioning/datasources/opslab.yml"),
    ("grafana-dashboard-providers", "grafana/provisioning/dashboards/opslab.yml"), ("grafana-dashboards", "grafana/dashboards/opslab.json"),
])
def test_configuration_is_generated_from_the_service_folders_byte_for_byte(overlays, prefix, source):
    data = configmap(overlays["local"], prefix)["data"]
    assert data[Path(source).name] == (REPO / source).read_text(encoding="utf-8")


def test_service_config_is_copied_into_deploy_only_by_the_generator():
    """The copies live in deploy/k8s/base/config/ (written by scripts/gen_k8s_config.py), nowhere else in deploy/."""
    names = {"prometheus.yml", "alertmanager.yml", "opslab.rules.yml", "opslab.json"}
    config = k8s_tasks.K8S / "base" / "config"
    copies = [p for p in (REPO / "deploy").rglob("*") if p.name in names and config not in p.parents]
    assert copies == []
    generators = yaml.safe_load((k8s_tasks.K8S / "base" / "kustomization.yaml").read_text())["configMapGenerator"]
    paths = [f for gen in generators for f in gen["files"]]
    assert paths and all(f.startswith("config/") and "=" not in f for f in paths), paths


def prometheus_file_globs() -> list[str]:
    """Every file pattern prometheus/prometheus.yml loads: rule_files and file_sd files (relative to it)."""
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    globs = list(config.get("rule_files", []))
    for section in (config.get("scrape_configs", []), (config.get("alerting") or {}).get("alertmanagers", [])):
        globs += [f for job in section for sd in job.get("file_sd_configs", []) for f in sd["files"]]
    return globs


def test_every_file_prometheus_yml_loads_is_generated_and_projected(overlays):
    """A rule or target file added to prometheus/ but left out of the generator or the projection
    would silently never load in the cluster: the config volume must hold exactly what
    prometheus.yml's patterns match in prometheus/."""
    wanted = sorted({p.relative_to(REPO / "prometheus").as_posix() for g in prometheus_file_globs()
                     for p in (REPO / "prometheus").glob(g)} | {"prometheus.yml"})
    assert "rules/opslab.rules.yml" in wanted and "targets/opslab.json" in wanted
    deployment = by(overlays["local"], "Deployment", "prometheus")
    sources = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")["projected"]["sources"]
    projected = {}
    for src in sources:
        data = by(overlays["local"], "ConfigMap", src["configMap"]["name"])["data"]
        for item in src["configMap"]["items"]:
            projected[item["path"]] = data[item["key"]]
    missing = sorted(set(wanted) - set(projected))
    assert not missing, (f"{missing}: add each to a configMapGenerator in deploy/k8s/base/kustomization.yaml "
                         "and project it in deploy/k8s/base/prometheus.yaml (volume config)")
    for path in wanted:
        assert projected[path] == (REPO / "prometheus" / path).read_text(encoding="utf-8"), path


def test_prometheus_targets_the_exporter_service(overlays):
    targets = json.loads(configmap(overlays["local"], "prometheus-targets")["data"]["opslab.json"])
    service = by(overlays["local"], "Service", "metrics")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "exporter"}
    assert targets[0]["targets"] == [f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"]


def test_the_prometheus_rule_is_current_and_holds_every_rule_group():
    """Every group and rule of prometheus/rules/, changed only where the operator overlay's settings.yaml
    says (the job matchers, the runbook base; tests/unit/repo/test_k8s_operator.py checks those)."""
    settings = k8s.load_operator_settings(k8s_tasks.OPERATOR_SETTINGS)
    committed = k8s_tasks.PROMETHEUS_RULE.read_text(encoding="utf-8")
    assert committed == k8s.prometheus_rule_text(k8s_tasks.RULES, settings), "stale: run `make k8s-render`"
    assert k8s_tasks.SERVICE_MONITOR.read_text(encoding="utf-8") == k8s.service_monitor_text(settings), "stale: run `make k8s-render`"
    rule = k8s_tasks.documents(committed)[0]
    groups = [g for p in sorted(k8s_tasks.RULES.glob("*.yml"))
              for g in yaml.safe_load(p.read_text().replace(k8s.RUNBOOK_BASE_REF, settings.runbook_base)
                                      .replace(f'job="{k8s.LAB_JOB}"', f'job="{settings.job}"'))["groups"]]
    assert rule["spec"]["groups"] == groups


# --- kubernetes-validate --strict -------------------------------------------------------------------

def builtin(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["apiVersion"] in BUILTIN_GROUPS]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_builtin_resource_validates_strictly(overlays, run_docs, version):
    docs = [d for docs in overlays.values() for d in builtin(docs)] + builtin(run_docs)
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert problems == []
    assert len(docs) > 40


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_strict_validation_rejects_an_unknown_field_and_a_wrong_type(overlays, version):
    deployment = copy.deepcopy(by(overlays["local"], "Deployment", "exporter"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)
    job = copy.deepcopy(next(d for d in k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "x")[0] if d["kind"] == "Job"))
    job["spec"]["parallelism"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, version, strict=True)


# --- custom resources against the official CRDs -------------------------------------------------------

@functools.lru_cache(maxsize=None)
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the Argo CD CRD alone is 400 kB
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind:
            return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {api_version} {kind} in {CRDS}")


def crd_errors(doc: dict[str, Any]) -> list[str]:
    from jsonschema import Draft4Validator

    validator = Draft4Validator(crd_schema(doc["apiVersion"], doc["kind"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def gitops_docs() -> list[dict[str, Any]]:
    return [d for p in sorted((REPO / "deploy" / "gitops").rglob("*.yaml")) for d in k8s_tasks.documents(p.read_text()) if "kind" in d]


needs_crds = pytest.mark.skipif(not CRDS.is_dir(), reason=f"{CRDS} is absent: the official CRDs (../shared/k8s-crds beside the "
                                                         "checkout) are data for this test and are not copied into the repository")


@needs_crds
def test_custom_resources_validate_against_their_crds(overlays):
    custom = [d for d in overlays["prometheus-operator"] + gitops_docs() if d["apiVersion"] not in BUILTIN_GROUPS]
    assert {d["kind"] for d in custom} == {"ServiceMonitor", "PrometheusRule", "Application", "GitRepository", "Kustomization"}
    assert {f"{d['kind']}/{d['metadata']['name']}": crd_errors(d) for d in custom} == {
        f"{d['kind']}/{d['metadata']['name']}": [] for d in custom}


@needs_crds
def test_crd_validation_rejects_a_bad_interval_and_a_missing_field(overlays):
    monitor = copy.deepcopy(by(overlays["prometheus-operator"], "ServiceMonitor", "exporter"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    assert crd_errors(monitor)
    source = copy.deepcopy(next(d for d in gitops_docs() if d["kind"] == "GitRepository"))
    del source["spec"]["url"]
    assert crd_errors(source)


# --- policy over the rendered YAML ------------------------------------------------------------------

def pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] == "Pod":
        yield doc["spec"]
    elif doc["kind"] in ("Deployment", "Job"):
        yield doc["spec"]["template"]["spec"]
    elif doc["kind"] == "CronJob":
        yield doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def policy_violations(doc: dict[str, Any], host_ports_allowed: bool = False) -> list[str]:
    """What this lab does not allow in a workload: every finding names the container and the rule."""
    found: list[str] = []
    for pod in pod_specs(doc):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if pod.get("automountServiceAccountToken") is not False:
            found.append(f"{where}: mounts a ServiceAccount token")
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                found.append(f"{where}: {flag}")
        found += [f"{where}: hostPath volume {v['name']}" for v in pod.get("volumes", []) if "hostPath" in v]
        pod_sec = pod.get("securityContext", {})
        if pod_sec.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            found.append(f"{where}: seccomp is not RuntimeDefault")
        for c in pod.get("initContainers", []) + pod["containers"]:
            at = f"{where}/{c['name']}"
            sec = c.get("securityContext", {})
            image = c["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                found.append(f"{at}: image {image} is not pinned")
            if sec.get("privileged"):
                found.append(f"{at}: privileged")
            if sec.get("allowPrivilegeEscalation") is not False:
                found.append(f"{at}: may escalate privileges")
            non_root = sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot")) is True
            if not (non_root and sec.get("runAsUser", pod_sec.get("runAsUser", 0)) != 0):
                found.append(f"{at}: not non-root")
            if sec.get("readOnlyRootFilesystem") is not True:
                found.append(f"{at}: root file system is writable")
            if sec.get("capabilities", {}).get("drop") != ["ALL"] or sec.get("capabilities", {}).get("add"):
                found.append(f"{at}: keeps capabilities")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    found.append(f"{at}: no cpu/memory {part}")
            if doc["kind"] == "Deployment":
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if probe not in c:
                        found.append(f"{at}: no {probe}")
            for port in c.get("ports", []):
                if "hostPort" in port and not (host_ports_allowed and port.get("hostIP") == "127.0.0.1"):
                    found.append(f"{at}: hostPort {port['hostPort']} not limited to 127.0.0.1 in the podman overlay")
    if doc["kind"] == "ServiceAccount" and doc.get("automountServiceAccountToken") is not False:
        found.append(f"ServiceAccount/{doc['metadata']['name']}: mounts its token")
    return found


def test_every_workload_follows_the_policy(overlays, run_docs):
    docs = [(d, name == "podman") for name, ds in overlays.items() for d in ds] + [(d, False) for d in run_docs]
    assert sum(1 for d, _ in docs if d["kind"] in WORKLOAD_KINDS) >= 14
    assert [v for d, podman in docs for v in policy_violations(d, podman)] == []


def test_exporter_probes_use_healthz(overlays):
    c = by(overlays["local"], "Deployment", "exporter")["spec"]["template"]["spec"]["containers"][0]
    assert {c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {"/healthz"}


def test_the_policy_finds_each_kind_of_violation(overlays):
    bad = copy.deepcopy(by(overlays["local"], "Deployment", "exporter"))
    pod = bad["spec"]["template"]["spec"]
    c = pod["containers"][0]
    c["image"] = "localhost/opslab:latest"
    c["securityContext"].update(privileged=True, allowPrivilegeEscalation=True, runAsUser=0, readOnlyRootFilesystem=False)
    c["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    del c["livenessProbe"], c["resources"]["limits"]
    c["ports"][0]["hostPort"] = 9108
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["hostNetwork"] = True
    pod["automountServiceAccountToken"] = True
    pod["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    found = "\n".join(policy_violations(bad))
    for expected in ("not pinned", "privileged", "escalate", "not non-root", "writable", "capabilities", "no livenessProbe",
                     "no cpu/memory limits", "hostPort", "hostPath", "hostNetwork", "token", "seccomp"):
        assert expected in found
    untagged = copy.deepcopy(by(overlays["local"], "Deployment", "grafana"))
    untagged["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/grafana/grafana"
    assert any("not pinned" in v for v in policy_violations(untagged))


# --- NetworkPolicies ----------------------------------------------------------------------------

def test_network_policies_deny_by_default_and_allow_only_the_stated_paths(overlays):
    docs = overlays["local"]
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies.pop("default-deny")
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies.pop("allow-dns-egress")
    assert {p["port"] for rule in dns["egress"] for p in rule["ports"]} == {53}
    paths = set()
    for spec in policies.values():
        target = spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in spec.get("ingress", []):
            for peer in rule["from"]:
                paths.update((peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], target, p["port"]) for p in rule["ports"])
        for rule in spec.get("egress", []):
            for peer in rule["to"]:
                paths.update((target, peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], p["port"]) for p in rule["ports"])
    assert paths == {("prometheus", "exporter", 9108), ("prometheus", "alertmanager", 9093), ("grafana", "prometheus", 9090),
                     ("alertmanager", "alerts", 9095)}


# --- GitOps -------------------------------------------------------------------------------------------

def test_gitops_points_at_existing_overlays_with_a_placeholder_repository():
    docs = gitops_docs()
    urls = [d["spec"]["source"]["repoURL"] for d in docs if d["kind"] == "Application"]
    urls += [d["spec"]["url"] for d in docs if d["kind"] == "GitRepository"]
    assert urls and all(u == k8s_tasks.REPO_URL_PLACEHOLDER for u in urls)
    assert urlparse(k8s_tasks.REPO_URL_PLACEHOLDER).hostname.endswith(".invalid")  # RFC 2606: can never resolve
    paths = [d["spec"]["source"]["path"] for d in docs if d["kind"] == "Application"]
    paths += [d["spec"]["path"] for d in docs if d["kind"] == "Kustomization"]
    assert all((REPO / p).joinpath("kustomization.yaml").is_file() for p in paths) and len(paths) == 3
    flux = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Kustomization"}
    assert flux["opslab"]["wait"] is True and flux["opslab"]["prune"] is True
    assert flux["opslab-secrets"]["decryption"]["provider"] == "sops"
    app = next(d for d in docs if d["kind"] == "Application")
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    # No build options: the overlays build with Argo CD's default Kustomize (issue 30); argocd-cm.yaml
    # only adds the CronJob's health check.
    cm = yaml.safe_load((REPO / "deploy" / "gitops" / "argocd" / "argocd-cm.yaml").read_text())
    assert set(cm["data"]) == {"resource.customizations.health.batch_CronJob"}


def test_the_docs_resource_list_is_current(overlays):
    page = k8s_tasks.DOCS_PAGE.read_text(encoding="utf-8")
    assert page == k8s.replace_block(page, k8s.resource_table(overlays)), "stale: run `make k8s-render`"
    assert "| Deployment | `exporter` | yes | yes | yes |" in page


def test_every_configmap_fits_client_side_apply(overlays, run_docs):
    """`kubectl apply` keeps the whole object in an annotation limited to 256 KiB; a dashboard or a
    spec set that outgrows it needs server-side apply (which Argo CD and Flux can use)."""
    sizes = {d["metadata"]["name"]: len(json.dumps(d)) for ds in (*overlays.values(), run_docs) for d in ds if d["kind"] == "ConfigMap"}
    assert sizes and max(sizes.values()) < 256 * 1024, sizes
