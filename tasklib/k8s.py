"""Kubernetes tasks: render the overlays and run Jobs, validate them, play the podman overlay.

The manifests are checked without a cluster (none can run on the build machines): `kubectl
kustomize` renders, kubernetes-validate checks against the real OpenAPI schemas, custom resources
against their CRDs, policy tests over the rendered YAML (tests/unit/test_k8s.py, tests/unit/repo/test_k8s_*.py), and `podman kube
play` runs the podman overlay for real (tests/integration/test_k8s_play.py).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from invoke import Context, task

from opslab import k8s
from tasklib.common import REPO

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("local", "podman", "prometheus-operator")
# Kustomize's default load restrictor, as `kubectl apply -k`, Argo CD and Flux build: the base reads
# generated copies of prometheus/, grafana/ and alertmanager/ inside its own folder (issue 30).
KUSTOMIZE = ["kubectl", "kustomize"]
CONFIG_GENERATOR = REPO / "scripts" / "gen_k8s_config.py"
RULES = REPO / "prometheus" / "rules"
OPERATOR = K8S / "overlays" / "prometheus-operator"
OPERATOR_SETTINGS = OPERATOR / "settings.yaml"  # the job, release label and runbook base of the two files below
PROMETHEUS_RULE = OPERATOR / "prometheusrule.yaml"
SERVICE_MONITOR = OPERATOR / "servicemonitor.yaml"
OUT = REPO / "build" / "k8s"
GITOPS = REPO / "deploy" / "gitops"
DOCS_PAGE = REPO / "docs" / "kubernetes.md"
REPO_URL_PLACEHOLDER = "https://REPLACE-ME.invalid/your-org/opslab.git"
PLAY_SPEC = REPO / "fixtures" / "specs" / "demo.yaml"
PLAY_NAME = "play-demo"
PLAY_NETWORK = "opslab-k8s"  # a Podman network with DNS: pods reach each other by pod name
PLAY_PROMETHEUS = "http://127.0.0.1:29090"  # the podman overlay's hostPorts (127.0.0.1 only)
PLAY_EXPORTER = "http://127.0.0.1:29108"


def kustomize(overlay: str) -> str:
    """`kubectl kustomize` of one overlay (SystemExit with the reason when kubectl is missing or fails)."""
    if not shutil.which("kubectl"):
        raise SystemExit("kubectl not found: it renders the Kustomize overlays (kubectl >= 1.27 has Kustomize v5 built in)")
    res = subprocess.run([*KUSTOMIZE, str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise SystemExit(f"kubectl kustomize deploy/k8s/overlays/{overlay}: {res.stderr.strip()}")
    return res.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML text."""
    return [d for d in yaml.safe_load_all(text) if d]


def _write(path: Path, text: str) -> bool:
    """Write TEXT unless PATH already holds it; True when it changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def _status(changed: bool) -> str:
    return " changed" if changed else "      ok"


@task(iterable=["spec"], help={
    "spec": "RunSpec file for the run set (repeat for more; two or more give an Indexed Job)",
    "name": "name of the run set (Job, ConfigMap; run ids <name>-<index>)", "parallelism": "pods running at once",
    "image": "the tc image (pinned tag)", "killswitch": "engage or release: render a kill switch Job instead",
    "reason": "why (with --killswitch)", "out": "output folder (default build/k8s)",
    "repo_url": "your repository's clone URL: writes deploy/gitops/ with it into OUT/gitops/",
    "generated": "also regenerate the committed generated files (the base's config/ copies, the operator overlay's "
                 "PrometheusRule and ServiceMonitor, "
                 "the docs' resource list); default on"})
def k8s_render(c: Context, spec: list[str] | None = None, name: str = "", parallelism: int = 1, image: str = k8s.DEFAULT_IMAGE,
               killswitch: str = "", reason: str = "", out: str = "", repo_url: str = "", generated: bool = True) -> None:
    """Regenerate the base's config/ copies and the operator overlay's PrometheusRule and ServiceMonitor (from its
    settings.yaml), render every overlay into build/k8s/ and list its resources;
    with --spec, also the run set's Jobs; with --killswitch, a kill switch Job; with --repo-url,
    the GitOps manifests pointing at that repository."""
    from opslab.errors import OpsLabError

    folder = Path(out) if out else OUT
    outputs: list[tuple[Path, str, str]] = []  # (path, text, what): all worked out before anything is written
    operator_files: list[tuple[Path, str, str]] = []  # (path, text, from what): the operator overlay's generated files
    try:
        if spec:
            result = k8s.render_runs(spec, name or "runs", parallelism, image)
            outputs.append((folder / "runs" / f"{name or 'runs'}.yaml", result.data["yaml"], "\n".join([result.summary, *result.details])))
        if killswitch:
            job = k8s.killswitch_job(killswitch, reason, image=image)
            outputs.append((folder / "runs" / f"{job['metadata']['name']}.yaml", k8s.dump([job]),
                            f"Job {job['metadata']['name']}: {killswitch} the kill switch"))
        if repo_url:
            url = k8s.check_repo_url(repo_url)
            for src in sorted(GITOPS.rglob("*.yaml")):
                outputs.append((folder / "gitops" / src.relative_to(GITOPS),
                                src.read_text(encoding="utf-8").replace(REPO_URL_PLACEHOLDER, url), f"{src.relative_to(REPO)} for {url}"))
        if generated:
            settings = k8s.load_operator_settings(OPERATOR_SETTINGS)
            operator_files = [(PROMETHEUS_RULE, k8s.prometheus_rule_text(RULES, settings), "prometheus/rules/ and settings.yaml"),
                              (SERVICE_MONITOR, k8s.service_monitor_text(settings), "settings.yaml")]
    except OpsLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    if generated:
        c.run(f"{sys.executable} {CONFIG_GENERATOR}")  # the base's copies of prometheus/, grafana/, alertmanager/
        for path, text, source in operator_files:
            print(f"{_status(_write(path, text))}  {path.relative_to(REPO)} (from {source})")
    rendered = {}
    for overlay in OVERLAYS:
        text = kustomize(overlay)
        rendered[overlay] = docs = documents(text)
        path = folder / f"{overlay}.yaml"
        kinds = Counter(d["kind"] for d in docs)
        names = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))  # the full list: docs/kubernetes.md
        print(f"{_status(_write(path, text))}  {path}: {len(docs)} resources: {names}")
    if generated:
        page = DOCS_PAGE.read_text(encoding="utf-8")
        changed = _write(DOCS_PAGE, k8s.replace_block(page, k8s.resource_table(rendered)))
        print(f"{_status(changed)}  {DOCS_PAGE.relative_to(REPO)}: the rendered resource list")
    for path, text, what in outputs:
        print(f"{_status(_write(path, text))}  {path}: " + what.replace("\n", "\n          "))


@task
def k8s_validate(c: Context) -> None:
    """Render every overlay and check it: kubernetes-validate --strict (several Kubernetes versions),
    custom resources against their CRDs, the policy tests (tests/unit/test_k8s.py, tests/unit/repo/test_k8s_*.py)."""
    c.run(f"{sys.executable} -m pytest -q -p no:cacheprovider {REPO / 'tests' / 'unit' / 'repo' / 'test_k8s_manifests.py'} "
          f"{REPO / 'tests' / 'unit' / 'test_k8s.py'} {REPO / 'tests' / 'unit' / 'repo' / 'test_k8s_secrets.py'}")
    print("      ok  k8s: overlays render and validate (kubernetes-validate, CRDs), policy and secrets checks pass")


# --- podman kube play ----------------------------------------------------------------------------

@dataclass
class Play:
    """The files `podman kube play` is given for the podman overlay and the demo run's pod."""

    folder: Path
    stack: Path
    run: Path
    configmaps: list[Path] = field(default_factory=list)
    run_configmaps: list[Path] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    run_id: str = ""

    @property
    def run_container(self) -> str:
        return f"{PLAY_NAME}-run"  # Podman names a pod's container <pod>-<container>


def _pod_volumes(docs: list[dict[str, Any]]) -> list[str]:
    """The Podman volumes kube play creates for these pods (claims, ConfigMaps, emptyDirs, by name)."""
    names: list[str] = []
    for doc in docs:
        spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
        for vol in spec.get("volumes", []):
            if "persistentVolumeClaim" in vol:
                names.append(vol["persistentVolumeClaim"]["claimName"])
            elif "configMap" in vol:
                names.append(vol["configMap"]["name"])
            else:
                names.append(vol["name"])
    return sorted(set(names))


def _pod_names(docs: list[dict[str, Any]]) -> list[str]:
    """The pods kube play creates for these documents: a Pod keeps its name; a Deployment's pod is
    <name>-pod-0 on Podman 4.3 and <name>-pod on newer Podman (both, as either may be left over)."""
    names: list[str] = []
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] == "Deployment":
            names += [f"{name}-pod-0", f"{name}-pod"]
        elif doc["kind"] == "Pod":
            names.append(name)
    return sorted(set(names))


def write_play(folder: Path, image: str = k8s.DEFAULT_IMAGE) -> Play:
    """Render the podman overlay and the demo run's Job (as a Pod) into FOLDER, ConfigMaps apart
    (kube play takes them with one --configmap FILE each)."""
    folder.mkdir(parents=True, exist_ok=True)
    stack_docs = documents(kustomize("podman"))
    specs = k8s.load_specs([PLAY_SPEC])
    run_docs, run_ids = k8s.run_set(specs, PLAY_NAME, 1, image)
    pod = k8s.job_pod(next(d for d in run_docs if d["kind"] == "Job" and d["metadata"]["name"] == PLAY_NAME))
    play = Play(folder, folder / "stack.yaml", folder / "run.yaml", run_id=run_ids[0])
    for i, doc in enumerate(d for d in stack_docs if d["kind"] == "ConfigMap"):
        play.configmaps.append(folder / f"stack-configmap-{i}.yaml")
        play.configmaps[-1].write_text(k8s.dump([doc]))
    workloads = [d for d in stack_docs if d["kind"] != "ConfigMap"]
    play.stack.write_text(k8s.dump(workloads))
    run_cm = next(d for d in run_docs if d["kind"] == "ConfigMap")
    play.run_configmaps.append(folder / "run-configmap.yaml")
    play.run_configmaps[0].write_text(k8s.dump([run_cm]))
    play.run.write_text(k8s.dump([pod]))
    play.volumes = _pod_volumes([d for d in workloads if d["kind"] == "Deployment"] + [pod])
    play.pods = _pod_names([*workloads, pod])
    return play


def _podman(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        # kube play also prints harmless errors about systemd healthcheck timers on machines without systemd.
        lines = [ln for ln in res.stderr.splitlines() if "systemd" not in ln and "syslog" not in ln]
        raise SystemExit(f"podman {' '.join(args[:2])}: {' '.join(lines).strip() or res.stdout.strip()}")
    return res


def _pods_present(names: list[str]) -> list[str]:
    listed = _podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    return sorted(set(names) & set(listed))


def play_down(play: Play) -> None:
    """Remove the played pods and the volumes kube play made for them (idempotent, converges).

    `podman kube down` removes what its file describes, but a play interrupted part-way can leave
    a pod it does not remove, which makes every later play fail with "pod already exists" (issue
    30): so every pod the play creates is also removed by name, and none may be left."""
    for path in (play.run, play.stack):
        if path.exists():
            _podman("kube", "down", str(path), check=False)
    res = _podman("pod", "rm", "--force", "--ignore", *play.pods, check=False) if play.pods else None
    left = _pods_present(play.pods)
    if left:
        why = f": {res.stderr.strip().splitlines()[-1]}" if res is not None and res.stderr.strip() else ""
        raise SystemExit(f"k8s-play: pod {', '.join(left)} is still there after podman pod rm --force{why}")
    for name in play.volumes:
        _podman("volume", "rm", "--force", name, check=False)


def play_up(play: Play) -> None:
    """Play the stack (exporter + Prometheus) on the DNS network."""
    if _podman("network", "exists", PLAY_NETWORK, check=False).returncode != 0:
        _podman("network", "create", PLAY_NETWORK)
    cms = [arg for path in play.configmaps for arg in ("--configmap", str(path))]
    _podman("kube", "play", "--network", PLAY_NETWORK, *cms, str(play.stack))


def play_run(play: Play, timeout: float = 600) -> int:
    """Play the demo run's pod and wait until its run container exits; return its exit code."""
    cms = [arg for path in play.run_configmaps for arg in ("--configmap", str(path))]
    _podman("kube", "play", "--network", PLAY_NETWORK, *cms, str(play.run))
    state = wait_for(lambda: _exited(play.run_container), timeout, f"container {play.run_container} to exit")
    return int(state)


def _exited(container: str) -> str | None:
    res = _podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container, check=False)
    status, _, code = res.stdout.strip().partition(" ")
    return code if status in ("exited", "stopped") else None


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll PROBE until it returns something truthy (bounded; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"k8s-play: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def http_json(url: str) -> Any:
    """GET a loopback URL and parse its JSON (None when it does not answer yet)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return json.loads(resp.read(1 << 20))
    except (OSError, ValueError):
        return None


def prometheus_query(expr: str) -> list[dict[str, Any]] | None:
    """The result vector of an instant query on the played Prometheus (None when it does not answer)."""
    doc = http_json(f"{PLAY_PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    return doc["data"]["result"] if doc and doc.get("status") == "success" else None


def artifacts_volume(play: Play) -> Path:
    """Where the artifacts volume's files are on the host."""
    res = _podman("volume", "inspect", "--format", "{{.Mountpoint}}", k8s.ARTIFACTS_CLAIM)
    return Path(res.stdout.strip())


# --- an Indexed Job's pods, played one per completion index, and the fan-in --------------------------

@dataclass
class PlaySet:
    """The files `podman kube play` is given for a run set's Indexed Job: its spec ConfigMap and one Pod per index."""

    name: str
    configmap: Path
    pods: dict[int, Path]
    run_ids: list[str]
    claim: str
    volumes: list[str] = field(default_factory=list)


def index_pod(job: dict[str, Any], index: int, claim: str = k8s.ARTIFACTS_CLAIM) -> dict[str, Any]:
    """Completion index INDEX of an Indexed Job as a Pod `<job>-<index>`: the Job controller's completion-index
    annotation set as it sets it, and, so as not to depend on podman resolving that annotation's fieldRef or
    expanding $(VAR) in args, TC_SPEC_INDEX given as a value and substituted in the args. CLAIM names the
    artifacts volume (a test plays on a volume of its own)."""
    pod = k8s.job_pod(job)
    pod["metadata"]["name"] = f"{job['metadata']['name']}-{index}"
    pod["metadata"]["annotations"] = {k8s.INDEX_ANNOTATION: str(index)}
    spec = pod["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        c["env"] = [{"name": e["name"], "value": str(index)} if e["name"] == "TC_SPEC_INDEX" else e for e in c["env"]]
        c["args"] = [a.replace("$(TC_SPEC_INDEX)", str(index)) for a in c["args"]]
    for vol in spec["volumes"]:
        if "persistentVolumeClaim" in vol:
            vol["persistentVolumeClaim"]["claimName"] = claim
    return pod


def write_play_set(folder: Path, spec_paths: list[Path], name: str, image: str = k8s.DEFAULT_IMAGE,
                   claim: str = k8s.ARTIFACTS_CLAIM) -> PlaySet:
    """Render the run set of SPEC_PATHS (an Indexed Job) into FOLDER: its ConfigMap and one Pod file per index."""
    folder.mkdir(parents=True, exist_ok=True)
    docs, run_ids = k8s.run_set(k8s.load_specs(spec_paths), name, 1, image)
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == name)
    configmap = folder / "configmap.yaml"
    configmap.write_text(k8s.dump([next(d for d in docs if d["kind"] == "ConfigMap")]))
    pods = {}
    for index in range(len(run_ids)):
        pods[index] = folder / f"pod-{index}.yaml"
        pods[index].write_text(k8s.dump([index_pod(job, index, claim)]))
    volumes = [claim, f"{name}-specs", "run-tmp"]
    return PlaySet(name, configmap, pods, run_ids, claim, volumes)


def play_index(play: PlaySet, index: int, timeout: float = 600) -> int:
    """Play index INDEX's pod, wait until its run container exits, remove the pod; its exit code (the init
    container's when that failed: the run container then never starts)."""
    pod = f"{play.name}-{index}"
    _podman("kube", "play", "--configmap", str(play.configmap), str(play.pods[index]))
    try:
        def done() -> str | None:
            init = _exited(f"{pod}-dataset")
            if init not in (None, "0"):
                return init
            return _exited(f"{pod}-run")
        return int(wait_for(done, timeout, f"pod {pod} to finish"))
    finally:
        _podman("pod", "rm", "--force", "--ignore", pod, check=False)


def play_set_down(play: PlaySet) -> None:
    """Remove the set's pods and volumes (idempotent)."""
    pods = [f"{play.name}-{i}" for i in play.pods]
    _podman("pod", "rm", "--force", "--ignore", *pods, check=False)
    left = _pods_present(pods)
    if left:
        raise SystemExit(f"k8s-play: pod {', '.join(left)} is still there after podman pod rm --force")
    for name in play.volumes:
        _podman("volume", "rm", "--force", name, check=False)


def volume_path(name: str) -> Path:
    """Where a Podman volume's files are on the host."""
    return Path(_podman("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.strip())


@task(help={"keep": "leave the pods running (default: podman kube down at the end)"})
def k8s_play(c: Context, keep: bool = False) -> None:
    """Play the podman overlay with `podman kube play`: exporter + Prometheus, Prometheus scrapes the
    exporter (up == 1), the demo run Job's pod writes a run that `tc artifacts verify` accepts."""
    if not shutil.which("podman"):
        raise SystemExit("podman not found: k8s-play needs Podman >= 4.3 (apt-get install podman)")
    play = write_play(OUT / "play")
    play_down(play)  # converge: leftovers of an earlier play (e.g. KEEP=1) are replaced
    try:
        play_up(play)
        print(f" changed  played {play.stack.relative_to(REPO)}: exporter-pod-0, prometheus-pod-0 on network {PLAY_NETWORK}")
        up = wait_for(lambda: [s for s in prometheus_query("up") or [] if s["value"][1] == "1"], 180, "Prometheus to scrape the exporter")
        print(f"      ok  Prometheus scrapes the exporter: up{{instance=\"{up[0]['metric']['instance']}\"}} == 1")
        code = play_run(play)
        if code != 0:
            raise SystemExit(f"k8s-play: the run pod exited {code}: podman logs {play.run_container}")
        print(f" changed  the run Job's pod wrote run {play.run_id} into volume {k8s.ARTIFACTS_CLAIM}")
        c.run(f"{sys.executable} -m opslab artifacts verify --all", env={"TC_ARTIFACTS_DIR": str(artifacts_volume(play))})
        wait_for(lambda: prometheus_query(f'tc_run_info{{run_id="{play.run_id}"}}'), 120, f"run {play.run_id} in Prometheus")
        print(f"      ok  Prometheus has tc_run_info{{run_id=\"{play.run_id}\"}} from the exporter")
        if keep:
            print(f"          prometheus {PLAY_PROMETHEUS}   exporter {PLAY_EXPORTER}/metrics   (make k8s-play again replaces them)")
    finally:
        if not keep:
            play_down(play)
            print("      ok  podman kube down: pods and their volumes removed")


TASKS = [k8s_render, k8s_validate, k8s_play]
