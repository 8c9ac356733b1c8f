"""The rendered Jobs' pods, executed the way the kubelet would run them, with the real tc and real
NautilusTrader (no cluster can run here): each container's args with `$(VAR)` expanded from its env,
the completion index from the Job controller's annotation, secretKeyRef values from a Secret, the
spec ConfigMap as a folder and the artifacts volume as a folder. Exit codes are then read through
the Job's podFailurePolicy, as the Job controller would."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import SPECS, run_tc
from opslab import k8s

pytestmark = pytest.mark.integration


def _env(container: dict[str, Any], index: int, secret: dict[str, str], root: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = item["value"]
        elif source.get("fieldRef", {}).get("fieldPath") == f"metadata.annotations['{k8s.INDEX_ANNOTATION}']":
            env[item["name"]] = str(index)
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["key"] in secret:
                env[item["name"]] = secret[ref["key"]]
            elif not ref.get("optional"):
                raise AssertionError(f"{item['name']}: the pod would not start without {ref}")
        else:
            raise AssertionError(f"unexpected env source {item}")
    env["TC_ARTIFACTS_DIR"] = str(root)  # the volume, mounted at /artifacts in the pod
    return env


def _expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion in args (an unknown VAR stays as written)."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def run_pod(job: dict[str, Any], index: int, spec_dir: Path, root: Path, secret: dict[str, str] | None = None) -> list[int]:
    """Run the pod's init containers, then its containers, in order; stop at the first failure."""
    pod = job["spec"]["template"]["spec"]
    codes = []
    for container in pod.get("initContainers", []) + pod["containers"]:
        env = _env(container, index, secret or {}, root)
        args = [_expand(a, env) for a in container["args"]]
        args = [a.replace(k8s.SPEC_MOUNT + "/", f"{spec_dir}/") for a in args]
        extra = {k: v for k, v in env.items() if k != "TC_ARTIFACTS_DIR"}
        done = run_tc(*args, "--json", artifacts=root, **extra)
        codes.append(done.code)
        if done.code != 0:
            break
    return codes


def job_action(job: dict[str, Any], code: int) -> str:
    """What the Job controller does with a failed pod's exit code: the first matching rule, else count it."""
    for rule in job["spec"]["podFailurePolicy"]["rules"]:
        if code in rule.get("onExitCodes", {}).get("values", []):
            return rule["action"]
    return "Count"


def materialize(docs: list[dict[str, Any]], folder: Path) -> dict[str, dict[str, Any]]:
    """Write the spec ConfigMap into FOLDER as the pod would see it; return the Jobs by name."""
    folder.mkdir()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for key, text in doc["data"].items():
                (folder / key).write_text(text)
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}


def test_each_index_of_the_set_writes_its_own_run_and_a_retry_is_harmless(tmp_path):
    docs, run_ids = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml", SPECS / "connectivity.yaml"]), "sweep", 2)
    jobs = materialize(docs, tmp_path / "spec")
    root = tmp_path / "artifacts"
    assert run_pod(jobs["sweep-collect"], 0, tmp_path, root) == [2]  # no root yet: bad input, the Job fails at once
    root.mkdir()
    assert run_pod(jobs["sweep-collect"], 0, tmp_path, root) == [4]  # the fan-in before the runs: retried
    assert job_action(jobs["sweep-collect"], 4) == "Count" and job_action(jobs["sweep-collect"], 2) == "FailJob"
    for index in range(jobs["sweep"]["spec"]["completions"]):
        assert run_pod(jobs["sweep"], index, tmp_path / "spec", root) == [0, 0]
    assert sorted(p.name for p in (root / "runs").iterdir()) == run_ids == ["sweep-0", "sweep-1"]
    meta = json.loads((root / "runs" / "sweep-1" / "metadata.json").read_text())
    assert meta["run_id"] == "sweep-1" and meta["status"] == "completed"
    before = {p: p.read_bytes() for p in (root / "runs").rglob("*") if p.is_file()}
    assert run_pod(jobs["sweep"], 0, tmp_path / "spec", root) == [0, 0]  # a pod retried after its run completed
    assert {p: p.read_bytes() for p in (root / "runs").rglob("*") if p.is_file()} == before
    assert run_pod(jobs["sweep-collect"], 0, tmp_path, root) == [0]  # the fan-in after them: collections/sweep.json
    assert [m["run_id"] for m in json.loads((root / "collections" / "sweep.json").read_text())["members"]] == run_ids
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def test_the_readiness_job_reports_what_the_secret_lacks(tmp_path):
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "connectivity.yaml"]), "ready")
    jobs = materialize(docs, tmp_path / "spec")
    root = tmp_path / "artifacts"
    assert run_pod(jobs["ready-readiness"], 0, tmp_path / "spec", root, {"TC_BINANCE_API_KEY": "x"}) == [4]
    doc = json.loads((root / "runs" / "connectivity" / "connectivity_readiness.json").read_text())
    assert doc["missing"] == ["TC_BINANCE_API_SECRET"] and "x" not in json.dumps(doc["placeholders"])
    assert job_action(jobs["ready-readiness"], 4) == "FailJob"  # not ready: a retry would say the same
    full = {"TC_BINANCE_API_KEY": "x", "TC_BINANCE_API_SECRET": "y"}
    assert run_pod(jobs["ready-readiness"], 0, tmp_path / "spec", root, full) == [0]


def test_an_engaged_kill_switch_blocks_the_paper_set_and_fails_the_whole_job(tmp_path):
    root = tmp_path / "artifacts"
    switch = k8s.killswitch_job("engage", "venue incident 42")
    assert run_pod(switch, 0, tmp_path, root) == [0]
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "paper-demo.yaml"]), "paper")
    jobs = materialize(docs, tmp_path / "spec")
    codes = run_pod(jobs["paper"], 0, tmp_path / "spec", root)
    assert codes == [0, 3]  # the dataset is prepared; the run is refused by the switch
    assert job_action(jobs["paper"], codes[-1]) == "FailJob"
    release = k8s.killswitch_job("release", "incident 42 resolved")
    assert run_pod(release, 0, tmp_path, root) == [0]
    assert run_pod(jobs["paper"], 0, tmp_path / "spec", root) == [0, 0]
