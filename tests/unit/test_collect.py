"""opslab/collect.py: the verified fan-in of a run set (`tc artifacts collect`), on real runs (tests/conftest.py sweep_root)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import backtest_set, tree_bytes
from opslab import collect, contracts, digests, verify
from opslab.errors import InputError


@pytest.fixture
def root(sweep_root, tmp_path, monkeypatch):
    """A fresh copy of the three-run root, the environment pointing at it (no key, a fixed clock)."""
    copy = tmp_path / "artifacts"
    shutil.copytree(sweep_root, copy, symlinks=True)
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(copy))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.delenv(digests.KEY_ENV, raising=False)
    return copy


def _doc(root: Path) -> dict:
    return json.loads((root / "collections" / "sweep.json").read_text())


def test_all_intact_writes_the_collection_then_a_second_call_is_ok_and_writes_nothing(root, monkeypatch):
    first = collect.collect("sweep", 3)
    assert (first.status, first.exit_code) == ("changed", 0) and "wrote collections/sweep.json" in first.summary
    doc = _doc(root)
    assert contracts.errors_for("collection_manifest", doc, "sweep.json") == []
    assert [(m["index"], m["run_id"]) for m in doc["members"]] == [(0, "sweep-0"), (1, "sweep-1"), (2, "sweep-2")]
    for m in doc["members"]:
        assert m["manifest_sha256"] == "sha256:" + hashlib.sha256((root / "runs" / m["run_id"] / "manifest.json").read_bytes()).hexdigest()
    assert digests.stamp_problems(doc, "sweep.json") == []
    before = tree_bytes(root)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")  # a later collect keeps created_at: nothing is rewritten
    second = collect.collect("sweep", 3)
    assert (second.status, second.exit_code) == ("ok", 0) and "is current" in second.summary
    assert tree_bytes(root) == before
    assert verify.verify(all_runs=True).status == "ok"


def test_the_digest_is_what_sha256sum_of_the_members_manifests_prints(root):
    collect.collect("sweep", 3)
    listing = "".join(f"{hashlib.sha256((root / 'runs' / f'sweep-{i}' / 'manifest.json').read_bytes()).hexdigest()}  "
                      f"runs/sweep-{i}/manifest.json\n" for i in range(3))
    assert _doc(root)["digest"] == "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def test_the_digest_changes_when_a_members_manifest_changes(root):
    collect.collect("sweep", 3)
    old = _doc(root)
    # sweep-1 run again with another clock: every file and its manifest differ, and the run verifies
    shutil.rmtree(root / "runs" / "sweep-1")
    scratch = root.parent / "again" / "artifacts"
    backtest_set(scratch, "sweep", [1], SOURCE_DATE_EPOCH="1700000999")
    shutil.copytree(scratch / "runs" / "sweep-1", root / "runs" / "sweep-1")
    again = collect.collect("sweep", 3)
    new = _doc(root)
    assert again.status == "changed" and new["digest"] != old["digest"]
    assert new["members"][0] == old["members"][0] and new["members"][1] != old["members"][1]


def test_check_verifies_and_writes_nothing(root):
    before = tree_bytes(root)
    planned = collect.collect("sweep", 3, check=True)
    assert (planned.status, planned.exit_code) == ("changed", 0) and "would write collections/sweep.json" in planned.summary
    assert tree_bytes(root) == before and not (root / "collections").exists()
    collect.collect("sweep", 3)
    assert collect.collect("sweep", 3, check=True).status == "ok"


def test_a_missing_index_is_named_and_nothing_is_written(root):
    res = collect.collect("sweep", 4)
    assert (res.status, res.exit_code) == ("failed", 4)
    assert res.details == ["index 3 (run sweep-3): missing (no runs/sweep-3/)"]
    assert not (root / "collections").exists()


def test_a_tampered_and_a_missing_index_are_both_named(root):
    collect.collect("sweep", 3)
    before = (root / "collections" / "sweep.json").read_bytes()
    metrics = root / "runs" / "sweep-1" / "metrics.json"
    doc = json.loads(metrics.read_text())
    doc["counters"] = {**doc["counters"], "orders": doc["counters"].get("orders", 0) + 1}
    metrics.write_text(json.dumps(doc))  # valid by its schema: only the manifest finds it
    shutil.rmtree(root / "runs" / "sweep-2")
    res = collect.collect("sweep", 3)
    assert res.exit_code == 4 and len(res.details) == 2
    assert res.details[0].startswith("index 1 (run sweep-1): tampered: runs/sweep-1/metrics.json: digest does not match")
    assert res.details[1] == "index 2 (run sweep-2): missing (no runs/sweep-2/)"
    assert (root / "collections" / "sweep.json").read_bytes() == before  # the old collection is left as it was
    # and verify now says the collection no longer matches its members
    problems = verify.verify(all_runs=True).details
    assert "collections/sweep.json: member sweep-2: runs/sweep-2/manifest.json is missing (the run was removed after it was collected)" in problems


def test_a_keyed_collect_refuses_members_sealed_without_the_key(root, monkeypatch):
    monkeypatch.setenv(digests.KEY_ENV, "lab-secret")
    res = collect.collect("sweep", 3)
    assert res.exit_code == 4 and all("tampered" in line and "no hmac" in line for line in res.details)


def test_an_unfinished_or_failed_member_is_named(root):
    meta = root / "runs" / "sweep-0" / "metadata.json"
    meta.write_text(meta.read_text().replace('"status": "completed"', '"status": "running"'))
    res = collect.collect("sweep", 3)
    assert res.details == ["index 0 (run sweep-0): not finished (status running); collect again when its pod has finished"]


def test_a_member_copied_under_another_index_is_tampered(root):
    shutil.rmtree(root / "runs" / "sweep-2")
    shutil.copytree(root / "runs" / "sweep-1", root / "runs" / "sweep-2")
    res = collect.collect("sweep", 3)
    assert res.details == ["index 2 (run sweep-2): tampered: its manifest.json and metadata.json name run 'sweep-1', 'sweep-1' (copied or renamed?)"]


def test_a_symlinked_member_or_collections_folder_is_refused(root, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(root / "runs" / "sweep-1", outside)
    os.symlink(outside, root / "runs" / "sweep-1")
    res = collect.collect("sweep", 3)
    assert res.exit_code == 4 and res.details == ["index 1 (run sweep-1): tampered: runs/sweep-1 is a symlink (tc never follows links)"]
    os.unlink(root / "runs" / "sweep-1")
    shutil.move(outside, root / "runs" / "sweep-1")
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", root / "collections")
    with pytest.raises(InputError, match="collections: is a symlink") as err:
        collect.collect("sweep", 3)
    assert err.value.exit_code == 2 and list((tmp_path / "target").iterdir()) == []


@pytest.mark.parametrize("name, count, message", [
    ("Sweep", 3, "NAME: 'Sweep': expected lowercase letters"),
    ("x" * 41, 3, "at most 40 characters"),
    ("sweep", 0, "--count: 0: expected an integer from 1 to 1000"),
    ("sweep", 1001, "--count: 1001"),
    ("sweep", True, "--count: True"),
])
def test_bad_input_is_one_clear_error(root, name, count, message):
    with pytest.raises(InputError) as err:
        collect.collect(name, count)
    assert message in str(err.value) and err.value.exit_code == 2 and "\n" not in str(err.value)


def test_an_edited_collection_is_found_by_verify_and_rewritten_by_collect(root):
    collect.collect("sweep", 3)
    path = root / "collections" / "sweep.json"
    doc = json.loads(path.read_text())
    doc["members"][0]["manifest_sha256"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(doc))
    problems = verify.verify(all_runs=True).details
    assert any(p.startswith("collections/sweep.json: /seal: does not match") for p in problems), problems
    assert collect.collect("sweep", 3).status == "changed"
    assert verify.verify(all_runs=True).status == "ok"
