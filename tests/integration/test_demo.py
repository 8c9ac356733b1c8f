"""The README's demo: runs, is idempotent, and is byte-identical under SOURCE_DATE_EPOCH."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from conftest import EPOCH, REPO, tree_bytes

pytestmark = pytest.mark.integration


def _demo(root, epoch: str | None = EPOCH) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TC_") and k not in ("SOURCE_DATE_EPOCH", "MAKEFLAGS", "MAKELEVEL")}
    env["TC_ARTIFACTS_DIR"] = str(root)
    if epoch:
        env["SOURCE_DATE_EPOCH"] = epoch
    return subprocess.run(["make", "--no-print-directory", "demo", "RUNTIME=native"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def demo_roots(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("demo-a"), tmp_path_factory.mktemp("demo-b")
    first_a = _demo(a)
    assert first_a.returncode == 0, first_a.stdout + first_a.stderr
    snapshot = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    first_bytes = tree_bytes(a)
    second_a = _demo(a)
    assert second_a.returncode == 0, second_a.stdout + second_a.stderr
    first_b = _demo(b)
    assert first_b.returncode == 0, first_b.stdout + first_b.stderr
    return a, b, first_a, second_a, snapshot, first_bytes


def test_demo_prints_where_the_run_is(demo_roots):
    a, _, first, _, _, _ = demo_roots
    assert f"demo run: {a}/runs/demo" in first.stdout
    assert "changed" in first.stdout
    tail = first.stdout.rstrip().split("\ndrill scorecard:\n")
    assert len(tail) == 2, "the demo ends with the drill scorecard, printed once"
    rows = tail[1].splitlines()
    assert len(rows) == 7 and all(row.split()[1:4] == ["lab", "pass", "detected"] for row in rows), tail[1]


LIVE = ("runs/node-demo/", "venue/")  # the live node runs in real time: its counts agree, not its bytes
OBSERVATIONS = ("tc reconcile", "tc connectivity readiness", "tc connectivity probe", "tc drill run")


def test_second_demo_converges_and_records_observations_anew(demo_roots):
    """Convergent steps say ok and write nothing; observations (reconcile, readiness, probe, drills)
    are recorded anew every time, and only their files (and the runs' journal/metadata/report/manifest
    that list them) change."""
    a, _, _, second, snapshot, _ = demo_roots
    status_lines = [line for line in second.stdout.splitlines() if re.match(r"^\s*(ok|changed|failed|error)\s+tc ", line)]
    observed = [line for line in status_lines if any(f" {cmd}" in line for cmd in OBSERVATIONS)]
    convergent = [line for line in status_lines if line not in observed]
    assert convergent and all(line.split()[0] == "ok" for line in convergent), second.stdout
    assert observed and all(line.split()[0] == "changed" for line in observed), second.stdout
    now = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    changed = {p.relative_to(a).as_posix() for p in now if snapshot.get(p) != now[p]}
    changed = {rel for rel in changed if not rel.startswith(LIVE[1])}  # the venue is a live server: its state moves with time
    derived = {"journal.jsonl", "metadata.json", "report.md", "report.html", "manifest.json"}
    allowed = re.compile(r"^(\.generation|drills/.*|runs/[^/]+/(observations/.*|reconciliation\.json|connectivity_(probe|readiness)\.json|"
                         + "|".join(re.escape(n) for n in derived) + "))$")
    assert changed and all(allowed.match(rel) for rel in changed), sorted(changed)
    assert not any(rel.startswith("datasets/") or rel.startswith("state/") for rel in changed)


def _deterministic(tree: dict[str, bytes]) -> dict[str, bytes]:
    tree = {rel: raw for rel, raw in tree.items() if not rel.startswith(LIVE)}
    if ".generation" in tree:  # the change feed names every write, the live node's too
        tree[".generation"] = b"".join(line for line in tree[".generation"].splitlines(keepends=True) if not line.startswith(tuple(p.encode() for p in LIVE)))
    return tree


def test_two_demo_roots_are_byte_identical(demo_roots):
    _, b, *_, first_bytes = demo_roots
    assert _deterministic(tree_bytes(b)) == _deterministic(first_bytes)


def test_demo_node_run_reconciles_with_the_venue(demo_roots):
    a, b, *_ = demo_roots
    for root in (a, b):
        recon = json.loads((root / "runs" / "node-demo" / "reconciliation.json").read_text())
        assert recon["status"] == "match" and recon["summary"]["checks"] >= 3
