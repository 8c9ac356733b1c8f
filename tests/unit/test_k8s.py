"""Rendering runs as Kubernetes Jobs (opslab/k8s.py) and `make k8s-render` (tasklib/k8s.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SPECS
from opslab import k8s, spec
from opslab.errors import InputError


def jobs(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}


def containers(job):
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}


def test_one_spec_is_one_job_that_keeps_the_spec_run_id():
    docs, run_ids = k8s.run_set(k8s.load_specs([SPECS / "paper-demo.yaml"]), "paper", parallelism=4)
    assert run_ids == ["paper-demo"]
    cm = docs[0]
    assert cm["kind"] == "ConfigMap" and list(cm["data"]) == ["spec-0.json"]
    assert json.loads(cm["data"]["spec-0.json"]) == spec.load(SPECS / "paper-demo.yaml").data
    job = jobs(docs)["paper"]
    assert "completionMode" not in job["spec"] and job["spec"]["completions"] == 1 and job["spec"]["parallelism"] == 1
    c = containers(job)
    assert c["dataset"]["args"] == ["data", "prepare", "--spec", "/spec/spec-0.json"]
    assert c["run"]["args"] == ["run", "paper", "--spec", "/spec/spec-0.json"]
    assert {"name": "TC_ARTIFACTS_DIR", "value": "/artifacts"} in c["run"]["env"]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == "opslab-artifacts"
    assert volumes["spec"]["configMap"]["name"] == cm["metadata"]["name"]
    assert "paper-readiness" not in jobs(docs)  # paper-demo names no credentials


def test_a_spec_set_is_an_indexed_job_with_run_ids_from_the_index(tmp_path):
    paths = [SPECS / "demo.yaml", SPECS / "connectivity.yaml", SPECS / "minimal.json"]
    docs, run_ids = k8s.run_set(k8s.load_specs(paths), "sweep", parallelism=2)
    assert run_ids == ["sweep-0", "sweep-1", "sweep-2"]
    data = docs[0]["data"]
    for index, path in enumerate(paths):
        rendered = json.loads(data[f"spec-{index}.json"])
        original = spec.load(path).data
        assert rendered["run_id"] == f"sweep-{index}"
        assert {k: v for k, v in rendered.items() if k != "run_id"} == {k: v for k, v in original.items() if k != "run_id"}
        # what the pod reads is a valid RunSpec in its own right
        (tmp_path / f"spec-{index}.json").write_text(data[f"spec-{index}.json"])
        assert spec.load(tmp_path / f"spec-{index}.json").run_id == f"sweep-{index}"
    job = jobs(docs)["sweep"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimitPerIndex"]) == (3, 2, 2)
    run = containers(job)["run"]
    assert run["args"] == ["run", "backtest", "--spec", "/spec/spec-$(TC_SPEC_INDEX).json"]
    index_env = next(e for e in run["env"] if e["name"] == "TC_SPEC_INDEX")
    assert index_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def test_an_indexed_set_has_a_collect_job_that_retries_until_every_index_finished():
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml", SPECS / "minimal.json", SPECS / "minimal.json"]), "sweep", image="reg/opslab:1")
    job = jobs(docs)["sweep-collect"]
    assert docs[-1] is job
    c = containers(job)["collect"]
    assert c["args"] == ["artifacts", "collect", "sweep", "--count", "3"] and c["image"] == "reg/opslab:1"
    assert {"name": "TC_ARTIFACTS_DIR", "value": "/artifacts"} in c["env"]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == "opslab-artifacts" and "spec" not in volumes
    assert "completionMode" not in job["spec"] and job["spec"]["completions"] == 1
    assert job["spec"]["backoffLimit"] == k8s.COLLECT_RETRIES >= 10
    by_code = {code: r["action"] for r in job["spec"]["podFailurePolicy"]["rules"] if "onExitCodes" in r for code in r["onExitCodes"]["values"]}
    assert 4 not in by_code and by_code[2] == "FailJob"  # exit 4 (an index not there yet) is retried; bad input is not
    single, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "one")
    assert "one-collect" not in jobs(single)  # one spec, one run: nothing to fan in


def test_parallelism_is_capped_at_the_number_of_specs():
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml", SPECS / "minimal.json"]), "two", parallelism=50)
    assert jobs(docs)["two"]["spec"]["parallelism"] == 2


def test_the_failure_policy_stops_the_set_on_the_kill_switch_and_retries_busy_pods():
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml", SPECS / "minimal.json"]), "two")
    rules = jobs(docs)["two"]["spec"]["podFailurePolicy"]["rules"]
    by_code = {code: r["action"] for r in rules if "onExitCodes" in r for code in r["onExitCodes"]["values"]}
    assert by_code == {3: "FailJob", 2: "FailIndex", 5: "Ignore"}
    single, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "one")
    assert {r["action"] for r in jobs(single)["one"]["spec"]["podFailurePolicy"]["rules"]} == {"FailJob", "Ignore"}


def test_only_the_readiness_job_sees_the_credentials_the_contract_names():
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml", SPECS / "connectivity.yaml"]), "sweep")
    contract = sorted({p["env"] for s in ("demo.yaml", "connectivity.yaml")
                       for p in spec.load(SPECS / s).data["connectivity_readiness"]["placeholders"]})
    readiness = containers(jobs(docs)["sweep-readiness"])["readiness"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in readiness["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert sorted(refs) == contract == ["TC_BINANCE_API_KEY", "TC_BINANCE_API_SECRET"]
    assert all(r == {"name": "opslab-credentials", "key": name, "optional": True} for name, r in refs.items())
    assert readiness["args"] == ["connectivity", "readiness", "--spec", "/spec/spec-$(TC_SPEC_INDEX).json"]
    for name, c in containers(jobs(docs)["sweep"]).items():
        assert not [e for e in c["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]], name


@pytest.mark.parametrize("args, message", [
    (dict(paths=[SPECS / "demo.yaml", SPECS / "paper-demo.yaml"], name="x"), "mixes engine kinds (backtest, paper)"),
    (dict(paths=[SPECS / "nope.yaml"], name="x"), "nope.yaml: no such file"),
    (dict(paths=[], name="x"), "--spec: give at least one"),
    (dict(paths=[SPECS / "demo.yaml"], name="Not_A_Name"), "--name: 'Not_A_Name'"),
    (dict(paths=[SPECS / "demo.yaml"], name="x" * 41), "at most 40 characters"),
    (dict(paths=[SPECS / "demo.yaml"], name="x", parallelism=0), "--parallelism: 0"),
    (dict(paths=[SPECS / "demo.yaml"], name="x", image="localhost/opslab:latest"), "--image"),
    (dict(paths=[SPECS / "demo.yaml"], name="x", image="localhost/opslab"), "--image"),
])
def test_bad_input_is_one_clear_error(args, message):
    with pytest.raises(InputError) as err:
        k8s.render_runs(args.pop("paths"), **args)
    assert message in str(err.value) and err.value.exit_code == 2


def test_an_invalid_spec_names_its_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((SPECS / "demo.yaml").read_text().replace("bars: 1440", "bars: 0"))
    with pytest.raises(InputError, match=r"bad.yaml: /dataset/bars"):
        k8s.load_specs([SPECS / "demo.yaml", bad])


def test_the_kill_switch_job_engages_the_switch_on_the_shared_volume():
    job = k8s.killswitch_job("engage", "venue incident 42")
    assert job["metadata"]["name"].startswith("killswitch-engage-")
    c = containers(job)["killswitch"]
    assert c["args"] == ["killswitch", "engage", "--reason", "venue incident 42"]
    assert {"name": "TC_ARTIFACTS_DIR", "value": "/artifacts"} in c["env"]
    assert k8s.killswitch_job("engage", "another reason")["metadata"]["name"] != job["metadata"]["name"]
    for action, reason in (("pause", "x"), ("engage", ""), ("engage", "x" * 201), ("engage", "line\nbreak")):
        with pytest.raises(InputError):
            k8s.killswitch_job(action, reason)


def test_a_job_as_a_pod_keeps_the_pod_template():
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "demo")
    job = jobs(docs)["demo"]
    pod = k8s.job_pod(job)
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "demo"
    assert pod["spec"] == job["spec"]["template"]["spec"] and pod["spec"]["restartPolicy"] == "Never"


def test_dump_writes_no_yaml_aliases():
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "demo")
    text = k8s.dump(docs)
    assert "&id" not in text and "*id" not in text
    assert list(yaml.safe_load_all(text)) == docs


def test_repo_url_must_be_a_clone_url():
    assert k8s.check_repo_url("https://git.example.org/me/opslab.git")
    for bad in ("http://git.example.org/x", "git.example.org/x", "https://", "https://host/ with space"):
        with pytest.raises(InputError, match="--repo-url"):
            k8s.check_repo_url(bad)


# --- the invoke task behind `make k8s-render` ------------------------------------------------------

def invoke(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TC_")}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not found: k8s-render renders the overlays with it")
def test_k8s_render_writes_overlays_runs_and_gitops_then_reports_ok(tmp_path):
    args = ("k8s-render", "--no-generated", "--out", str(tmp_path), "--spec", str(SPECS / "demo.yaml"), "--spec", str(SPECS / "minimal.json"),
            "--name", "sweep", "--parallelism", "2", "--repo-url", "https://git.example.org/me/opslab.git")
    first = invoke(*args)
    assert first.returncode == 0, first.stderr
    for overlay in ("local", "podman", "prometheus-operator"):
        assert (tmp_path / f"{overlay}.yaml").is_file()
    sweep = list(yaml.safe_load_all((tmp_path / "runs" / "sweep.yaml").read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in sweep] == [("ConfigMap", "sweep-specs"), ("Job", "sweep"), ("Job", "sweep-readiness"),
                                                                    ("Job", "sweep-collect")]
    app = yaml.safe_load((tmp_path / "gitops" / "argocd" / "application.yaml").read_text())
    assert app["spec"]["source"]["repoURL"] == "https://git.example.org/me/opslab.git"
    assert "changed" in first.stdout and "prometheusrule.yaml" not in first.stdout  # --no-generated: the checkout is left alone
    second = invoke(*args)
    assert second.returncode == 0 and "changed" not in second.stdout


def test_k8s_render_refuses_bad_input_before_writing_anything(tmp_path):
    res = invoke("k8s-render", "--out", str(tmp_path), "--spec", str(SPECS / "demo.yaml"), "--spec", str(SPECS / "paper-demo.yaml"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["error: --spec: the set mixes engine kinds (backtest, paper); render one set per kind"]
    assert list(tmp_path.iterdir()) == []


# --- `make k8s-play` converges (issue 30) ----------------------------------------------------------

def test_play_down_removes_every_pod_the_play_creates_by_name_and_refuses_a_survivor(tmp_path, monkeypatch):
    from tasklib import k8s as k8s_tasks

    docs = [{"kind": "Deployment", "metadata": {"name": "exporter"}}, {"kind": "ConfigMap", "metadata": {"name": "x"}},
            {"kind": "Pod", "metadata": {"name": k8s_tasks.PLAY_NAME}}]
    names = k8s_tasks._pod_names(docs)
    assert names == sorted(["exporter-pod-0", "exporter-pod", k8s_tasks.PLAY_NAME])  # Podman 4.3 and newer
    play = k8s_tasks.Play(tmp_path, tmp_path / "stack.yaml", tmp_path / "run.yaml", pods=names, volumes=["v"])
    calls: list[tuple[str, ...]] = []
    listed = {"pods": "other-pod\n"}

    def podman(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        out = listed["pods"] if args[:2] == ("pod", "ps") else ""
        return subprocess.CompletedProcess(["podman", *args], 0, out, "")

    monkeypatch.setattr(k8s_tasks, "_podman", podman)
    k8s_tasks.play_down(play)
    assert ("pod", "rm", "--force", "--ignore", *names) in calls and calls[-1] == ("volume", "rm", "--force", "v")
    calls.clear()
    listed["pods"] = "other-pod\nexporter-pod-0\n"
    with pytest.raises(SystemExit, match="k8s-play: pod exporter-pod-0 is still there"):
        k8s_tasks.play_down(play)
    assert not [c for c in calls if c[:2] == ("volume", "rm")]
