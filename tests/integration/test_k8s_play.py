"""`podman kube play` of the podman overlay, for real: the exporter and Prometheus pods start from
the project images, Prometheus scrapes the exporter (up == 1, asked through its HTTP API on a
127.0.0.1 hostPort), the run Job's pod template played as a Pod writes a run that `tc artifacts
verify` accepts and that Prometheus then shows; `podman kube down` removes everything. A pod left
behind by an interrupted play (planted here before the first play_down) is removed by name, so the
play converges instead of failing with "pod already exists" (issue 30)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from opslab import k8s

pytestmark = [pytest.mark.integration, pytest.mark.container]

PROMETHEUS_IMAGE = "localhost/opslab-prometheus:debian"
LEFTOVER = "exporter-pod-0"  # the exporter Deployment's pod on Podman 4.3


def _missing() -> str | None:
    if not shutil.which("podman"):
        return "podman not found: this test plays the podman overlay with `podman kube play` (.ci/podman-setup.sh installs it)"
    if not shutil.which("kubectl"):
        return "kubectl not found: the podman overlay is rendered with `kubectl kustomize`"
    for image, how in ((k8s.DEFAULT_IMAGE, "make image"), (PROMETHEUS_IMAGE, ".ci/podman-setup.sh")):
        if subprocess.run(["podman", "image", "exists", image], capture_output=True).returncode != 0:
            return f"image {image} is not present: build it with {how}"
    return None


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    from tasklib import k8s as k8s_tasks

    play = k8s_tasks.write_play(tmp_path_factory.mktemp("k8s-play"))
    # What an interrupted play can leave: a pod named as one the play creates, which `podman kube
    # down` does not remove and `podman kube play` then refuses ("pod already exists").
    k8s_tasks.play_down(play)
    planted = subprocess.run(["podman", "pod", "create", "--name", LEFTOVER], capture_output=True, text=True, timeout=120)
    assert planted.returncode == 0, planted.stderr
    k8s_tasks.play_down(play)  # leftovers of an interrupted earlier play
    left = subprocess.run(["podman", "pod", "ps", "--format", "{{.Name}} {{.ID}}"], capture_output=True, text=True).stdout.split("\n")
    leftover = {"id": planted.stdout.strip(), "after_down": [ln for ln in left if ln.split(" ")[0] == LEFTOVER]}
    try:
        k8s_tasks.play_up(play)
        yield k8s_tasks, play, leftover
    finally:
        k8s_tasks.play_down(play)
        pods = subprocess.run(["podman", "pod", "ps", "--format", "{{.Name}}"], capture_output=True, text=True).stdout.split()
        assert not set(play.pods) & set(pods), "podman kube down left pods behind"


def test_a_leftover_pod_is_removed_by_play_down_and_the_play_then_starts(played):
    k8s_tasks, play, leftover = played
    assert LEFTOVER in play.pods and k8s_tasks.PLAY_NAME in play.pods
    assert leftover["after_down"] == [], "play_down left the planted pod"
    res = subprocess.run(["podman", "pod", "inspect", LEFTOVER, "--format", "{{.ID}} {{.State}}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    pod_id, state = res.stdout.split()
    assert pod_id != leftover["id"] and state == "Running"  # the played pod, not the planted one


def test_the_played_pods_use_the_project_images(played):
    k8s_tasks, play, _ = played
    images = {}
    for pod in ("exporter-pod-0", "prometheus-pod-0"):
        res = subprocess.run(["podman", "pod", "inspect", pod, "--format", "{{range .Containers}}{{.Name}} {{end}}"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        for name in res.stdout.split():
            image = subprocess.run(["podman", "inspect", name, "--format", "{{.ImageName}}"], capture_output=True, text=True).stdout.strip()
            if not name.endswith("-infra"):
                images[name] = image
    assert images == {"exporter-pod-0-exporter": k8s.DEFAULT_IMAGE, "prometheus-pod-0-prometheus": PROMETHEUS_IMAGE}


def test_prometheus_scrapes_the_exporter(played):
    k8s_tasks, play, _ = played
    up = k8s_tasks.wait_for(lambda: [s for s in k8s_tasks.prometheus_query("up") or [] if s["value"][1] == "1"], 180,
                            "Prometheus to scrape the exporter")
    assert up[0]["metric"]["instance"] == "exporter-pod-0:9108" and up[0]["metric"]["job"] == "opslab"
    rules = k8s_tasks.http_json(f"{k8s_tasks.PLAY_PROMETHEUS}/api/v1/rules")
    assert rules["status"] == "success" and rules["data"]["groups"], "the generated rules ConfigMap did not load"


def test_the_run_pod_writes_a_run_that_verifies_and_prometheus_shows(played):
    k8s_tasks, play, _ = played
    assert k8s_tasks.play_run(play) == 0, subprocess.run(["podman", "logs", play.run_container], capture_output=True, text=True).stderr
    root = k8s_tasks.artifacts_volume(play)
    res = subprocess.run([sys.executable, "-m", "opslab", "artifacts", "verify", "--all", "--json"], cwd=REPO,
                         env={"TC_ARTIFACTS_DIR": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["status"] == "ok"
    assert (root / "runs" / play.run_id / "manifest.json").is_file()
    shown = k8s_tasks.wait_for(lambda: k8s_tasks.prometheus_query(f'tc_run_status{{run_id="{play.run_id}"}}'), 120,
                               f"run {play.run_id} in Prometheus")
    assert shown[0]["metric"]["status"] == "completed"
