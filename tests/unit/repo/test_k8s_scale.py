"""A spec set at the lab's limit (1,000 specs) rendered into an Indexed Job: every object within
Kubernetes' limits, the specs split over ConfigMaps that one projected volume mounts (issue 30)."""

from __future__ import annotations

import json

import pytest

from conftest import SPECS
from opslab import k8s
from opslab.errors import InputError

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (requirements/dev.lock)")

API_OBJECT_LIMIT = 1024 * 1024  # the API server refuses a ConfigMap (and etcd an object) beyond 1 MiB
APPLY_LIMIT = 256 * 1024  # `kubectl apply` (client-side) copies the object into an annotation capped at 256 KiB
BACKTESTS = [SPECS / "demo.yaml", SPECS / "week-100k.yaml", SPECS / "byo-backtest.yaml", SPECS / "minimal.json"]


@pytest.fixture(scope="module")
def thousand() -> tuple[list[dict], list[str]]:
    specs = k8s.load_specs([BACKTESTS[i % len(BACKTESTS)] for i in range(k8s.MAX_SPECS)])
    return k8s.run_set(specs, "sweep", parallelism=50)


def test_a_1000_spec_set_keeps_every_object_within_the_limits(thousand):
    docs, run_ids = thousand
    sizes = {f"{d['kind']}/{d['metadata']['name']}": len(json.dumps(d)) for d in docs}
    print("\n" + "\n".join(f"  {name}: {size} bytes" for name, size in sizes.items()))
    assert max(sizes.values()) < APPLY_LIMIT < API_OBJECT_LIMIT, sizes
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    assert len(configmaps) > 1  # 1,000 specs are more than one ConfigMap takes
    assert [c["metadata"]["name"] for c in configmaps] == ["sweep-specs"] + [f"sweep-specs-{k}" for k in range(1, len(configmaps))]
    assert run_ids == [f"sweep-{i}" for i in range(1000)]


def test_every_index_finds_its_spec_in_the_one_folder_the_pod_mounts(thousand):
    docs, _ = thousand
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    keys = [key for data in configmaps.values() for key in data]
    assert sorted(keys) == sorted(f"spec-{i}.json" for i in range(1000)) and len(keys) == len(set(keys))
    for i in (0, 1, 499, 999):
        text = next(data[f"spec-{i}.json"] for data in configmaps.values() if f"spec-{i}.json" in data)
        assert json.loads(text)["run_id"] == f"sweep-{i}"
    readers = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] != "sweep-collect"]  # collect reads no spec
    assert [j["metadata"]["name"] for j in readers] == ["sweep", "sweep-readiness"]
    for job in readers:
        pod = job["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "spec")
        assert [s["configMap"]["name"] for s in volume["projected"]["sources"]] == list(configmaps)
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert {"name": "spec", "mountPath": k8s.SPEC_MOUNT, "readOnly": True} in container["volumeMounts"]
            assert f"{k8s.SPEC_MOUNT}/spec-$(TC_SPEC_INDEX).json" in container["args"]


@pytest.mark.parametrize("version", ["1.31.0", "1.35.0"])
def test_the_1000_spec_render_validates_strictly(thousand, version):
    docs, _ = thousand
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_set_is_split_where_the_next_spec_would_not_fit(monkeypatch):
    text = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"] * 2), "pair")[0][0]["data"]["spec-0.json"]
    one = len(json.dumps({"spec-0.json": text}))  # a spec as the ConfigMap stores it (escaped), with its key
    monkeypatch.setattr(k8s, "CONFIGMAP_LIMIT", 2 * one + 10)  # two specs fit, a third does not
    docs, _ = k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"] * 5), "five")
    layout = [sorted(d["data"]) for d in docs if d["kind"] == "ConfigMap"]
    assert layout == [["spec-0.json", "spec-1.json"], ["spec-2.json", "spec-3.json"], ["spec-4.json"]]


def test_a_set_beyond_the_configmaps_it_may_use_is_refused_with_the_way_out(monkeypatch):
    monkeypatch.setattr(k8s, "CONFIGMAP_LIMIT", 3000)  # one demo spec per ConfigMap
    monkeypatch.setattr(k8s, "MAX_CONFIGMAPS", 3)
    assert len([d for d in k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"] * 3), "three")[0] if d["kind"] == "ConfigMap"]) == 3
    with pytest.raises(InputError, match=r"more than 3 ConfigMaps of 3000 bytes hold; split the set"):
        k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"] * 4), "four")


def test_one_spec_larger_than_a_configmap_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(k8s, "CONFIGMAP_LIMIT", 500)
    with pytest.raises(InputError, match=r"demo\.yaml: \d+ bytes as stored, more than one ConfigMap of the set holds \(500\)"):
        k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "big")
