"""The run model: the run object writes each derived file once, --check changes nothing anywhere,
observations are recorded anew and the latest one is what the report and the exporter show."""

from __future__ import annotations

import collections
import json
import threading

import pytest

from conftest import REPO, SPECS, tree_bytes
from opslab.venue.server import BinanceVenue

MINIMAL = str(SPECS / "minimal.json")
RECONCILE = str(SPECS / "reconcile.yaml")
EXPECTED = str(REPO / "fixtures/reconciliation/expected.json")

# Every mutating command, with --check. A populated root must come out byte-identical.
CHECKED = [
    ("data", "prepare", "--spec", MINIMAL),
    ("data", "prepare", "--spec", str(SPECS / "demo.yaml")),
    ("run", "init", "--spec", MINIMAL),
    ("run", "init", "--spec", str(SPECS / "demo.yaml")),
    ("run", "backtest", "--spec", MINIMAL),
    ("run", "paper", "--spec", str(SPECS / "paper-demo.yaml")),
    ("killswitch", "engage", "--reason", "x"),
    ("killswitch", "release", "--reason", "x"),
    ("reconcile", "--spec", RECONCILE, "--observed", EXPECTED),
    ("connectivity", "readiness", "--spec", str(SPECS / "connectivity.yaml")),
    ("connectivity", "probe", "--spec", MINIMAL, "--url", "http://127.0.0.1:9/"),
    ("report", "minimal"),
    ("drill", "run", "mismatch"),
    ("drill", "run", "--all"),
]


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    from conftest import EPOCH, run_tc

    root = tmp_path_factory.mktemp("populated") / "artifacts"
    for args in (("run", "init", "--spec", MINIMAL), ("reconcile", "--spec", RECONCILE, "--observed", EXPECTED),
                 ("killswitch", "engage", "--reason", "populate")):
        assert run_tc(*args, artifacts=root, SOURCE_DATE_EPOCH=EPOCH).code in (0, 4)
    return root


@pytest.mark.parametrize("command", CHECKED, ids=[f"{i}-{c[0]}-{c[1].lstrip('-')}" for i, c in enumerate(CHECKED)])
def test_check_changes_nothing_in_a_populated_root(populated, command):
    from conftest import run_tc

    before = tree_bytes(populated)
    dirs = sorted(p for p in populated.rglob("*") if p.is_dir())
    result = run_tc(*command, "--check", "--json", artifacts=populated)
    assert result.code in (0, 3, 4), result.err
    assert result.json()["status"] in ("ok", "changed")
    assert tree_bytes(populated) == before
    assert sorted(p for p in populated.rglob("*") if p.is_dir()) == dirs, "--check must not create folders"


def test_every_mutating_command_has_check():
    from opslab.cli import build_parser

    parser = build_parser()
    for command in CHECKED:
        words = [w for w in command if not w.startswith("-")][:2]
        args = parser.parse_args([*command, "--check"])
        assert args.check is True, words


def test_one_command_writes_each_derived_file_once(lab):
    """The run object: metadata at most twice (start, end), report.md and manifest.json once."""
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    feed = (lab.root / ".generation").read_text().splitlines()
    counts = collections.Counter(line for line in feed if line.startswith("runs/minimal/"))
    assert counts["runs/minimal/metadata.json"] <= 2
    assert counts["runs/minimal/report.md"] == 1 and counts["runs/minimal/manifest.json"] == 1
    offset = len(feed)
    assert lab("reconcile", "--spec", MINIMAL, "--expected", EXPECTED, "--observed", EXPECTED).code == 0
    counts = collections.Counter((lab.root / ".generation").read_text().splitlines()[offset:])
    assert counts["runs/minimal/metadata.json"] <= 2 and counts["runs/minimal/report.md"] == 1 and counts["runs/minimal/manifest.json"] == 1


def test_two_probes_are_two_observations_and_the_latest_is_shown(lab):
    from opslab.metrics.server import dump

    with BinanceVenue() as venue:
        venue.set_faults({})
        first = lab("connectivity", "probe", "--spec", MINIMAL, "--url", f"{venue.url}/api/v3/ping", "--json", SOURCE_DATE_EPOCH="")
        venue.set_faults({"latency_ms": 120})
        second = lab("connectivity", "probe", "--spec", MINIMAL, "--url", f"{venue.url}/api/v3/ping", "--json", SOURCE_DATE_EPOCH="")
    assert first.code == 0 and second.code == 0
    fast, slow = first.json()["data"]["probe"]["latency_ms"], second.json()["data"]["probe"]["latency_ms"]
    assert slow > fast + 50
    folder = lab.root / "runs/minimal"
    history = [json.loads(line) for line in (folder / "observations/connectivity_probe.jsonl").read_text().splitlines()]
    assert [h["latency_ms"] for h in history] == [fast, slow]
    assert json.loads((folder / "connectivity_probe.json").read_text())["latency_ms"] == slow
    assert json.loads((folder / "metadata.json").read_text())["connectivity_probe"]["latency_ms"] == slow
    assert f"| latency | {slow} ms |" in (folder / "report.md").read_text()
    exposition = dump(lab.root).body
    line = next(x for x in exposition.splitlines() if x.startswith("tc_connectivity_probe_latency_seconds{"))
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(slow / 1000.0)
    assert lab("artifacts", "verify", "--all").code == 0


def test_a_busy_run_is_exit_5(lab):
    import fcntl
    import os

    assert lab("run", "init", "--spec", MINIMAL).code == 0
    fd = os.open(lab.root / "runs/minimal", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = lab("reconcile", "--spec", MINIMAL, "--expected", EXPECTED, "--observed", EXPECTED)
    finally:
        os.close(fd)
    assert result.code == 5 and "in use by another tc process" in result.err


def test_killswitch_status_says_engaged_when_it_exits_3(lab):
    assert lab("killswitch", "engage", "--reason", "x").code == 0
    result = lab("killswitch", "status")
    assert result.code == 3 and result.out.startswith("engaged: ")


def test_servers_print_listening_through_the_reporter(lab):
    import subprocess
    import sys

    from conftest import tc_env

    proc = subprocess.Popen([sys.executable, "-m", "opslab", "venue", "serve", "--port", "0", "--json"], cwd=REPO,
                            env=tc_env(lab.root), stdout=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(20, proc.kill)
        timer.start()
        first = json.loads(proc.stdout.readline())
        timer.cancel()
        assert first["event"] == "listening" and first["url"].startswith("http://127.0.0.1:")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    last = json.loads(out.strip().splitlines()[-1])
    assert last["status"] == "ok" and proc.returncode == 0
