"""The verified fan-in played with podman, for real (issue 30 item 4): a three-spec set renders an Indexed Job;
each completion index's pod (tasklib.k8s.index_pod: the index annotation and TC_SPEC_INDEX set as the Job
controller would) runs in the project image with `podman kube play` and writes its run into one shared
artifacts volume. Then `tc artifacts collect` over that volume: all intact, a collection manifest (and ok the
second time); one index tampered and one missing, exit 4 naming both.

The collect runs on the host (this checkout's tc) against the volume's mountpoint, as test_k8s_play.py runs
`tc artifacts verify`: the image is built from a release and need not hold this checkout's tc. The rendered
`<name>-collect` Job runs the same command in the image (tests/unit/test_k8s.py checks what it renders).
The volume is one of this test's own, so a concurrent k8s play is left alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SPECS, tc_env
from opslab import k8s

pytestmark = [pytest.mark.integration, pytest.mark.container]

NAME = "collect-play"
CLAIM = "opslab-artifacts-collect-play"
SPEC = SPECS / "minimal.json"  # 120 bars: the smallest backtest, seconds per pod


def _missing() -> str | None:
    if not shutil.which("podman"):
        return "podman not found: this test plays an Indexed Job's pods with `podman kube play` (.ci/podman-setup.sh installs it)"
    if subprocess.run(["podman", "image", "exists", k8s.DEFAULT_IMAGE], capture_output=True).returncode != 0:
        return f"image {k8s.DEFAULT_IMAGE} is not present: build it with make image"
    return None


def _collect(root, *args: str):
    return subprocess.run([sys.executable, "-m", "opslab", "artifacts", "collect", NAME, *args], cwd=REPO, env=tc_env(root),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    from tasklib import k8s as k8s_tasks

    play = k8s_tasks.write_play_set(tmp_path_factory.mktemp("collect-play"), [SPEC] * 3, NAME, claim=CLAIM)
    k8s_tasks.play_set_down(play)  # leftovers of an interrupted earlier play
    try:
        codes = [k8s_tasks.play_index(play, index) for index in play.pods]
        yield k8s_tasks, play, codes, k8s_tasks.volume_path(CLAIM)
    finally:
        k8s_tasks.play_set_down(play)


def test_every_index_pod_writes_its_own_run_into_the_shared_volume(played):
    _, play, codes, root = played
    assert codes == [0, 0, 0]
    assert play.run_ids == [f"{NAME}-{i}" for i in range(3)]
    for index, run_id in enumerate(play.run_ids):
        meta = json.loads((root / "runs" / run_id / "metadata.json").read_text())
        assert (meta["run_id"], meta["status"]) == (run_id, "completed"), index


def test_the_fan_in_collects_all_intact_then_refuses_a_tampered_and_a_missing_index(played):
    _, play, codes, root = played
    assert codes == [0, 0, 0]
    first = _collect(root, "--count", "3", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["status"] == "changed"
    doc = json.loads((root / "collections" / f"{NAME}.json").read_text())
    assert [m["run_id"] for m in doc["members"]] == play.run_ids and doc["count"] == 3
    again = _collect(root, "--count", "3")
    assert again.returncode == 0 and again.stdout.startswith("ok: ")
    # one index tampered (a file its manifest covers), one gone
    report = root / "runs" / play.run_ids[1] / "report.md"
    report.write_text(report.read_text() + "\nedited after the run\n")
    shutil.rmtree(root / "runs" / play.run_ids[2])
    refused = _collect(root, "--count", "3")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    lines = refused.stdout.splitlines()
    assert lines[0] == f"failed: collection {NAME}: 2 of 3 index(es) missing, unfinished or tampered; nothing written"
    assert lines[1].startswith(f"  index 1 (run {NAME}-1): tampered: runs/{NAME}-1/report.md: digest does not match")
    assert lines[2] == f"  index 2 (run {NAME}-2): missing (no runs/{NAME}-2/)"
    assert json.loads((root / "collections" / f"{NAME}.json").read_text()) == doc  # nothing written
