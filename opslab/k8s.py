"""Kubernetes manifests the lab renders from its own inputs (the scale-out path, docs/kubernetes.md).

- runs: a spec set -> ConfigMaps holding the specs (several past 1 MiB) + one Job (an Indexed Job for two or more
  specs: one run per completion index, run id `<name>-<index>`), plus a readiness Job whose pods
  alone receive the credentials the specs' readiness contract names (secretKeyRef).
- the fan-in: for an Indexed Job, a Job `<name>-collect` running `tc artifacts collect` (opslab/collect.py)
  on the shared artifacts volume once every index has finished.
- the kill switch: a Job that engages or releases the file-based switch on the shared artifacts
  volume, which every run pod's gate reads.
- a Job's pod template as a Pod (`podman kube play` runs Pods, not Jobs).
- the prometheus-operator overlay's PrometheusRule (built from prometheus/rules/*.yml: Kustomize
  cannot turn a rule file into a custom resource's spec) and ServiceMonitor, both from the overlay's
  settings.yaml, so the job the monitor assigns is the job the rules select; the overlay commits
  this output, checked current by a test.

Plain functions: documents in, documents out, InputError (exit 2) on bad input, no printing.
Rendering is the project's own code, not a template engine: the manifests are a few dicts, and
the only input that varies (the spec set) is validated by opslab.spec first.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from opslab import __version__, contracts, spec
from opslab.errors import InputError
from opslab.result import Result

NAMESPACE = "opslab"
DEFAULT_IMAGE = f"localhost/opslab:{__version__}"
ARTIFACTS_CLAIM = "opslab-artifacts"
CREDENTIALS_SECRET = "opslab-credentials"
SERVICE_ACCOUNT = "runner"
UID = 10001  # the image's opslab user
SPEC_MOUNT = "/spec"
ARTIFACTS_MOUNT = "/artifacts"
# A DNS-1123 label short enough that `<name>-<index>` stays a valid run id (64 characters) and the
# Job's pod names (`<name>-<index>-<random>`) stay within 63.
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
MAX_SPECS = 1000
# A set's specs are split into ConfigMaps of at most CONFIGMAP_LIMIT bytes each (counted as JSON
# strings, as the object is stored), mounted together as one projected volume. The limit is
# `kubectl apply`'s, not the API server's 1 MiB: client-side apply copies the whole object into
# the last-applied annotation, which is capped at 256 KiB, and the rest is room for metadata.
# Beyond MAX_CONFIGMAPS (about 7 MB of specs) a set is split (docs/kubernetes.md).
CONFIGMAP_LIMIT = 240_000
MAX_CONFIGMAPS = 32
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_CHECK_FAILED, EXIT_BUSY = 2, 3, 4, 5


def check_name(name: str, what: str = "--name") -> str:
    """NAME as a Kubernetes object name for a run set, or InputError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InputError(f"{what}: {name!r}: expected lowercase letters, digits and '-', starting and ending with a letter or digit, "
                         "at most 40 characters")
    return name


def check_repo_url(url: str) -> str:
    """A Git clone URL for the GitOps manifests (https:// or ssh://), or InputError."""
    if not isinstance(url, str) or not re.match(r"^(https|ssh)://[^\s/]+/\S+$", url) or len(url) > 500:
        raise InputError(f"--repo-url: {url!r}: expected your repository's clone URL, https://HOST/PATH or ssh://HOST/PATH")
    return url


def _labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": name, "app.kubernetes.io/part-of": "opslab",
            "app.kubernetes.io/component": "run"}


def _security() -> tuple[dict[str, Any], dict[str, Any]]:
    pod = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    return pod, container


def _container(name: str, image: str, args: list[str], env: list[dict[str, Any]], mounts: list[dict[str, Any]],
               resources: dict[str, Any]) -> dict[str, Any]:
    _, sec = _security()
    return {"name": name, "image": image, "args": args, "workingDir": "/tmp",
            "env": [{"name": "TC_ARTIFACTS_DIR", "value": ARTIFACTS_MOUNT}, *env],
            "resources": resources, "securityContext": sec, "volumeMounts": mounts}


def _pod_spec(containers: list[dict[str, Any]], init: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    pod_sec, _ = _security()
    out: dict[str, Any] = {"restartPolicy": "Never", "serviceAccountName": SERVICE_ACCOUNT, "automountServiceAccountToken": False,
                           "securityContext": pod_sec}
    if init:
        out["initContainers"] = init
    out["containers"] = containers
    out["volumes"] = volumes
    return out


def _volumes(config_maps: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "artifacts", "persistentVolumeClaim": {"claimName": ARTIFACTS_CLAIM}},
                                     {"name": "run-tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "artifacts", "mountPath": ARTIFACTS_MOUNT}, {"name": "run-tmp", "mountPath": "/tmp"}]
    if len(config_maps) == 1:
        volumes.append({"name": "spec", "configMap": {"name": config_maps[0]}})
    elif config_maps:  # several ConfigMaps, one folder: their keys (spec-<index>.json) never collide
        volumes.append({"name": "spec", "projected": {"sources": [{"configMap": {"name": n}} for n in config_maps]}})
    if config_maps:
        mounts.append({"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True})
    return volumes, mounts


RUN_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
SMALL_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}


def load_specs(paths: Iterable[str | Path]) -> list[spec.RunSpec]:
    """Load and validate every spec (InputError naming the file and field on the first bad one)."""
    paths = list(paths)
    if not paths:
        raise InputError("--spec: give at least one RunSpec file")
    if len(paths) > MAX_SPECS:
        raise InputError(f"--spec: {len(paths)} specs, at most {MAX_SPECS} in one set (split it)")
    loaded = [spec.load(p) for p in paths]
    kinds = sorted({s.data["engine"]["kind"] for s in loaded})
    if len(kinds) > 1:
        raise InputError(f"--spec: the set mixes engine kinds ({', '.join(kinds)}); render one set per kind")
    return loaded


def _spec_entries(specs: list[spec.RunSpec], name: str) -> tuple[list[dict[str, str]], list[str]]:
    """The ConfigMaps' data (spec-<index>.json, in index order, each within CONFIGMAP_LIMIT bytes) and
    the run id of each index."""
    indexed = len(specs) > 1
    shards: list[dict[str, str]] = [{}]
    size = 0
    run_ids: list[str] = []
    for index, loaded in enumerate(specs):
        doc = copy.deepcopy(loaded.data)
        if indexed:
            doc["run_id"] = f"{name}-{index}"
        run_ids.append(doc["run_id"])
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        key = f"spec-{index}.json"
        need = len(json.dumps(key)) + len(json.dumps(text)) + 2  # as stored: `"key": "escaped text",`
        if need > CONFIGMAP_LIMIT:
            raise InputError(f"--spec: {loaded.path}: {need} bytes as stored, more than one ConfigMap of the set holds ({CONFIGMAP_LIMIT})")
        if size + need > CONFIGMAP_LIMIT:
            shards.append({})
            size = 0
        shards[-1][key] = text
        size += need
    if len(shards) > MAX_CONFIGMAPS:
        total = sum(len(json.dumps(t)) for shard in shards for t in shard.values())
        raise InputError(f"--spec: the specs take {total} bytes, more than {MAX_CONFIGMAPS} ConfigMaps of {CONFIGMAP_LIMIT} "
                         "bytes hold; split the set (docs/kubernetes.md)")
    return shards, run_ids


def _configmap_names(name: str, count: int) -> list[str]:
    """<name>-specs, then <name>-specs-1, -2, ... for a set that needs more than one ConfigMap."""
    return [f"{name}-specs" if k == 0 else f"{name}-specs-{k}" for k in range(count)]


def _failure_policy(indexed: bool, final: list[int]) -> dict[str, Any]:
    """Kill switch (exit 3) stops the whole set; exit codes in FINAL (bad input, and for a check a
    failed check: a retry would say the same) fail their index without retries; busy (exit 5:
    another pod holds the same lock, e.g. two indices preparing one dataset) and disruptions (drain,
    preemption) retry without counting as a failure."""
    return {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [EXIT_BLOCKED]}},
        {"action": "FailIndex" if indexed else "FailJob", "onExitCodes": {"operator": "In", "values": final}},
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [EXIT_BUSY]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]}


def _job(name: str, component: str, count: int, parallelism: int, template_spec: dict[str, Any], deadline: int,
         final: tuple[int, ...] = (EXIT_BAD_INPUT,)) -> dict[str, Any]:
    indexed = count > 1
    job_spec: dict[str, Any] = {"completions": count, "parallelism": min(parallelism, count)}
    if indexed:
        job_spec.update({"completionMode": "Indexed", "backoffLimitPerIndex": 2})
    else:
        job_spec["backoffLimit"] = 2
    job_spec.update({"podFailurePolicy": _failure_policy(indexed, list(final)), "activeDeadlineSeconds": deadline,
                     "ttlSecondsAfterFinished": 604800,
                     "template": {"metadata": {"labels": _labels(name, component)}, "spec": template_spec}})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NAMESPACE, "labels": _labels(name, component)},
            "spec": job_spec}


def _index_env(indexed: bool) -> tuple[list[dict[str, Any]], str]:
    """The env that names this pod's spec, and the spec path (with $(TC_SPEC_INDEX) for an Indexed Job)."""
    if not indexed:
        return [], f"{SPEC_MOUNT}/spec-0.json"
    env = [{"name": "TC_SPEC_INDEX", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}]
    return env, f"{SPEC_MOUNT}/spec-$(TC_SPEC_INDEX).json"


def run_set(specs: list[spec.RunSpec], name: str, parallelism: int = 1,
            image: str = DEFAULT_IMAGE) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifests for a spec set (ConfigMap, run Job, and a readiness Job when a spec names
    credentials) and the run id of each index."""
    check_name(name)
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or not 1 <= parallelism <= MAX_SPECS:
        raise InputError(f"--parallelism: {parallelism!r}: expected an integer from 1 to {MAX_SPECS}")
    if not image or any(ch.isspace() for ch in image) or ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        raise InputError(f"--image: {image!r}: expected a pinned image reference NAME:TAG (not :latest)")
    shards, run_ids = _spec_entries(specs, name)
    kind = specs[0].data["engine"]["kind"]
    indexed = len(specs) > 1
    config_maps = _configmap_names(name, len(shards))
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": cm, "namespace": NAMESPACE, "labels": _labels(name, "run")}, "data": data}
                                  for cm, data in zip(config_maps, shards, strict=True)]
    env, spec_path = _index_env(indexed)
    volumes, mounts = _volumes(config_maps)
    init = [_container("dataset", image, ["data", "prepare", "--spec", spec_path], env, mounts, SMALL_RESOURCES)]
    run = _container("run", image, ["run", kind, "--spec", spec_path], env, mounts, RUN_RESOURCES)
    docs.append(_job(name, "run", len(specs), parallelism, _pod_spec([run], init, volumes), deadline=86400))
    names = sorted({p["env"] for s in specs for p in (s.data.get("connectivity_readiness") or {}).get("placeholders", [])})
    if names:
        # Only these pods see the credentials; optional, so a key missing from the Secret is what
        # readiness reports (unset, exit 4) instead of a pod that never starts.
        secret_env = [{"name": n, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": n, "optional": True}}} for n in names]
        args = ["connectivity", "readiness", "--spec", spec_path]
        check = _container("readiness", image, args, env + secret_env, mounts, SMALL_RESOURCES)
        docs.append(_job(f"{name}-readiness", "readiness", len(specs), parallelism, _pod_spec([check], [], volumes), deadline=3600,
                         final=(EXIT_BAD_INPUT, EXIT_CHECK_FAILED)))
    docs += [collect_job(name, len(specs), image)] if indexed else []
    return docs, run_ids


# The fan-in Job is applied with the run Job and starts at once: until every index has finished, collect exits 4
# (an index missing or not finished), which the Job retries with the controller's pod backoff (10 s, doubling,
# capped at 6 minutes). 12 retries wait about 45 minutes; a set that runs longer is collected by re-creating the
# Job once the run Job is complete (docs/kubernetes.md). A tampered index stays exit 4 and fails the Job after
# its retries, with the index named in the last pod's log; bad input (2) fails it at once.
COLLECT_RETRIES = 12


def collect_job(name: str, count: int, image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    """The fan-in Job `<name>-collect`: `tc artifacts collect NAME --count COUNT` on the shared artifacts volume,
    retried (exit 4) until every index of the run Job has finished, then collections/<name>.json."""
    check_name(name)
    volumes, mounts = _volumes([])
    box = _container("collect", image, ["artifacts", "collect", name, "--count", str(count)], [], mounts, SMALL_RESOURCES)
    job = _job(f"{name}-collect", "collect", 1, 1, _pod_spec([box], [], volumes), deadline=86400)
    job["spec"]["backoffLimit"] = COLLECT_RETRIES
    return job


def killswitch_job(action: str, reason: str, image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    """A Job that engages or releases the kill switch on the shared artifacts volume, named
    killswitch-<action>-<digest of the reason> (a Job runs once; a new reason is a new Job)."""
    if action not in ("engage", "release"):
        raise InputError(f"--killswitch: {action!r}: expected engage or release")
    if not reason or len(reason) > 200 or any(ord(ch) < 32 for ch in reason):
        raise InputError("--reason: expected 1 to 200 printable characters (kept in state/kill_switch_events.jsonl)")
    name = f"killswitch-{action}-{hashlib.sha256(reason.encode()).hexdigest()[:8]}"
    volumes, mounts = _volumes([])
    box = _container("killswitch", image, ["killswitch", action, "--reason", reason], [], mounts, SMALL_RESOURCES)
    return _job(name, "killswitch", 1, 1, _pod_spec([box], [], volumes), deadline=600)


def job_pod(job: dict[str, Any]) -> dict[str, Any]:
    """A Job's pod template as a Pod of the same name (for `podman kube play`, which runs no Jobs)."""
    template = job["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job["metadata"]["name"], "namespace": job["metadata"].get("namespace", NAMESPACE),
                         "labels": dict(template.get("metadata", {}).get("labels", {}))},
            "spec": copy.deepcopy(template["spec"])}


def render_runs(paths: Iterable[str | Path], name: str, parallelism: int = 1, image: str = DEFAULT_IMAGE) -> Result:
    """The `k8s render` operation: validate the specs and return their manifests as YAML (nothing written)."""
    specs = load_specs(paths)
    docs, run_ids = run_set(specs, name, parallelism, image)
    kinds = ", ".join(f"{d['kind']} {d['metadata']['name']}" for d in docs)
    details = [f"index {i}: run {r} from {s.path}" for i, (r, s) in enumerate(zip(run_ids, specs, strict=True))]
    return Result("ok", f"{len(specs)} spec(s) -> {kinds}", data={"documents": docs, "yaml": dump(docs), "run_ids": run_ids},
                  details=details)


# --- the prometheus-operator overlay: ServiceMonitor + PrometheusRule from one settings file -------------

OPERATOR_SETTINGS_SCHEMA = "k8s_operator_settings"
# The scrape job prometheus/prometheus.yml names and prometheus/rules/*.yml select: the one value a
# rule's job matcher may hold; the generator replaces it with the settings' job.
LAB_JOB = "opslab"
# How the rule files spell the runbook base (prometheus.yml's external label); an operator's
# Prometheus does not set that label, so the generator writes the settings' base in its place.
RUNBOOK_BASE_REF = "{{ $externalLabels.runbook_base }}"
# A label matcher on `job` in PromQL, any operator, any of PromQL's three string quotes.
JOB_MATCHER = re.compile(r"""\bjob\s*(=~|!=|!~|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)""")
EXPORTER_LABELS = {"app.kubernetes.io/name": "exporter"}  # the exporter Service's labels (deploy/k8s/base/exporter.yaml)
EXPORTER_PORT = "metrics"  # the exporter Service's port name


@dataclass(frozen=True)
class OperatorSettings:
    """deploy/k8s/overlays/prometheus-operator/settings.yaml (schemas/k8s_operator_settings.schema.json),
    validated on construction: the scrape job, the monitors' and rules' `release` label, the runbook base."""

    job: str
    release: str
    runbook_base: str

    def __post_init__(self) -> None:
        check_operator_settings({"job": self.job, "release": self.release, "runbook_base": self.runbook_base}, "settings")


def check_operator_settings(data: Any, source: str) -> dict[str, Any]:
    """DATA when it is valid operator settings; otherwise InputError with its first problem as one line,
    `SOURCE: FIELD: expected ...` (the expectation is the schema's `x-expected` for that field)."""
    schema = contracts.load_schema(OPERATOR_SETTINGS_SCHEMA)
    if not isinstance(data, dict):
        raise InputError(f"{source}: /: expected a mapping with the fields {', '.join(schema['required'])}")
    for ptr, message in contracts.iter_errors(OPERATOR_SETTINGS_SCHEMA, data):
        field = ptr.lstrip("/").split("/")[0]
        if field in schema["properties"] and field in data:
            raise InputError(f"{source}: {field}: expected {schema['properties'][field]['x-expected']}, got {data[field]!r}")
        raise InputError(f"{source}: {ptr}: {message}")
    return data


def load_operator_settings(path: Path) -> OperatorSettings:
    """The operator overlay's settings file, validated (InputError naming the file and the field)."""
    data = check_operator_settings(spec.parse_document(Path(path), "settings"), str(path))
    return OperatorSettings(**data)


def _generated_header(source: str, function: str) -> str:
    return (f"# GENERATED by `make k8s-render` from {source} ({function}): do not edit.\n"
            "# tests/unit/repo/test_k8s_manifests.py fails when it is not current.\n")


def job_matchers(expr: str) -> list[tuple[str, str]]:
    """Every (operator, value) of a `job` label matcher in a PromQL expression (the value unquoted)."""
    return [(m.group(1), m.group(2)[1:-1]) for m in JOB_MATCHER.finditer(expr)]


def _for_operator(rule: dict[str, Any], settings: OperatorSettings, where: str) -> dict[str, Any]:
    """RULE with its job matchers set to the settings' job and its runbook links made absolute."""
    rule = copy.deepcopy(rule)
    expr = str(rule.get("expr", ""))
    for op, value in job_matchers(expr):
        if (op, value) != ("=", LAB_JOB):
            raise InputError(f'{where}: expr: job{op}{value!r}: expected job="{LAB_JOB}" (the lab\'s scrape job; the overlay\'s '
                             "settings.yaml sets the job the operator assigns)")
    if "expr" in rule:
        rule["expr"] = JOB_MATCHER.sub(lambda _: f'job="{settings.job}"', expr)
    annotations = rule.get("annotations") or {}
    for key, value in annotations.items():
        annotations[key] = str(value).replace(RUNBOOK_BASE_REF, settings.runbook_base)
        if "$externalLabels" in annotations[key]:
            raise InputError(f"{where}: annotations/{key}: uses $externalLabels, which an operator's Prometheus does not set; "
                             f"expected only {RUNBOOK_BASE_REF}, which the settings' runbook_base replaces")
    return rule


def prometheus_rule(rule_files: Iterable[Path], settings: OperatorSettings, name: str = "opslab") -> dict[str, Any]:
    """A PrometheusRule holding every group of the given Prometheus rule files, in order: job matchers
    select the settings' job (what service_monitor assigns), runbook links start with its runbook_base,
    and it carries its release label."""
    groups: list[Any] = []
    for path in rule_files:
        doc = spec.parse_document(path, "Prometheus rule")
        if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
            raise InputError(f"{path}: /groups: expected a list of rule groups")
        for group in doc["groups"]:
            rules = group.get("rules", []) if isinstance(group, dict) else []
            if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
                raise InputError(f"{path}: /groups: expected rule groups with a list of rules")
            named = [(r, f"{path}: {r.get('alert') or r.get('record')}") for r in rules]
            groups.append({**group, "rules": [_for_operator(r, settings, where) for r, where in named]} if rules else group)
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "opslab", "app.kubernetes.io/part-of": "opslab",
                                                  "release": settings.release}},
            "spec": {"groups": groups}}


def prometheus_rule_text(rules_dir: Path, settings: OperatorSettings) -> str:
    """The committed text of the prometheus-operator overlay's PrometheusRule."""
    header = _generated_header("prometheus/rules/*.yml and settings.yaml", "opslab.k8s.prometheus_rule")
    return header + dump([prometheus_rule(sorted(rules_dir.glob("*.yml")), settings)])


def service_monitor(settings: OperatorSettings) -> dict[str, Any]:
    """The ServiceMonitor for the exporter's Service: its samples get `job` = the settings' job (a
    relabeling with a fixed value, applied after the operator's own job label, the Service's name)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "exporter", "labels": {**EXPORTER_LABELS, "release": settings.release}},
            "spec": {"selector": {"matchLabels": dict(EXPORTER_LABELS)},
                     "endpoints": [{"port": EXPORTER_PORT, "path": "/metrics", "interval": "15s",
                                    "relabelings": [{"action": "replace", "targetLabel": "job", "replacement": settings.job}]}]}}


def service_monitor_text(settings: OperatorSettings) -> str:
    """The committed text of the prometheus-operator overlay's ServiceMonitor."""
    return _generated_header("settings.yaml", "opslab.k8s.service_monitor") + dump([service_monitor(settings)])


RESOURCES_START = "<!-- k8s-resources:start (generated by `make k8s-render`; do not edit) -->"
RESOURCES_END = "<!-- k8s-resources:end -->"
_HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def resource_table(overlays: dict[str, list[dict[str, Any]]]) -> str:
    """A Markdown table of what each overlay renders (generated ConfigMaps without their hash suffix)."""
    names = list(overlays)
    rows: dict[tuple[str, str], set[str]] = {}
    for overlay, docs in overlays.items():
        for doc in docs:
            name = doc["metadata"]["name"]
            if doc["kind"] == "ConfigMap" and _HASH_SUFFIX.search(name):
                name = _HASH_SUFFIX.sub("-<hash>", name)
            rows.setdefault((doc["kind"], name), set()).add(overlay)
    lines = ["| kind | name | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for (kind, name), present in sorted(rows.items()):
        lines.append(f"| {kind} | `{name}` | " + " | ".join("yes" if o in present else "" for o in names) + " |")
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """TEXT with the part between the resource-list markers replaced by BLOCK (InputError without markers)."""
    start, end = text.find(RESOURCES_START), text.find(RESOURCES_END)
    if start < 0 or end < start:
        raise InputError(f"the resource list markers are missing: {RESOURCES_START} ... {RESOURCES_END}")
    return text[: start + len(RESOURCES_START)] + "\n" + block + text[end:]


class _Dumper(yaml.SafeDumper):
    """Block-style YAML without anchors/aliases (shared sub-documents are written out each time)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(docs: Iterable[dict[str, Any]]) -> str:
    """Documents as one multi-document YAML text (block style, keys in the order given)."""
    return "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120) for d in docs)
