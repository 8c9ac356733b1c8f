"""Adversarial cases, by class: links under the root, hostile inputs, kill-switch state vs history,
verify gaps, stored text that tries to forge output, misconfigured roots, file modes.

Each class is named in the test names (test_links_*, test_input_*, test_killswitch_*, test_verify_*,
test_escape_*, test_root_*, test_modes_*); docs/security.md says what each protection covers.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SPECS, tc_env, tree_bytes

MINIMAL = str(SPECS / "minimal.json")
RECONCILE = str(SPECS / "reconcile.yaml")
CONNECTIVITY = str(SPECS / "connectivity.yaml")
AS_ROOT = os.geteuid() == 0


def _one_error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err and "unexpected" not in result.err
    return lines[0]


# --- links: nothing is read or written through a link under the root -----------------------------

def _outside(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_bytes(b"line one\nlast line without newline")
    return victim


LINKED_FILES = {
    "journal": ("runs/minimal/journal.jsonl", ("run", "init", "--spec", MINIMAL)),
    "metadata": ("runs/minimal/metadata.json", ("run", "init", "--spec", MINIMAL)),
    "kill switch history": ("state/kill_switch_events.jsonl", ("killswitch", "engage", "--reason", "x")),
    "kill switch state": ("state/kill_switch.json", ("killswitch", "engage", "--reason", "x")),
    "change feed": (".generation", ("killswitch", "engage", "--reason", "x")),
    "observation history": ("runs/reconcile-fixtures/observations/reconciliation.jsonl",
                            ("reconcile", "--spec", RECONCILE, "--observed", str(REPO / "fixtures/reconciliation/observed_match.json"))),
}


@pytest.mark.parametrize("case", sorted(LINKED_FILES))
def test_links_a_linked_file_is_refused_and_its_target_untouched(lab, tmp_path, case):
    rel, command = LINKED_FILES[case]
    victim = _outside(tmp_path)
    before = victim.read_bytes()
    if rel.startswith("runs/minimal/"):
        assert lab("run", "init", "--spec", MINIMAL).code == 0
        (lab.root / rel).unlink()
    link = lab.root / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    result = lab(*command)
    assert result.code == 2, result.out + result.err
    assert "symlink" in _one_error_line(result) and rel.rsplit("/", 1)[-1] in result.err
    assert victim.read_bytes() == before


@pytest.mark.parametrize("folder", ["runs/minimal", "state", "datasets", "runs"])
def test_links_a_linked_folder_is_refused_and_nothing_lands_outside(lab, tmp_path, folder):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = lab.root / folder
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    command = ("killswitch", "engage", "--reason", "x") if folder == "state" else ("run", "init", "--spec", MINIMAL)
    result = lab(*command)
    assert result.code == 2 and "symlink" in _one_error_line(result)
    assert list(outside.iterdir()) == []


def test_links_verify_reports_every_link_as_tampering(lab, tmp_path):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (lab.root / "runs" / "linked").symlink_to(outside, target_is_directory=True)
    (lab.root / "runs/minimal/extra.json").symlink_to(outside / "x.json")
    result = lab("artifacts", "verify", "--all", "--json")
    assert result.code == 4
    problems = result.json()["details"]
    assert any("runs/linked: is a symlink" in p for p in problems), problems
    assert any("runs/minimal/extra.json: is a symlink" in p for p in problems), problems


def test_links_leftover_temp_files_are_reported_then_removed_by_the_next_writer(lab):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    temp = lab.root / "runs/minimal" / f".metadata.json.{dead}.abcd1234.tmp"
    temp.write_text("{half")
    result = lab("artifacts", "verify", "--all", "--json")
    assert result.code == 4 and any("leftover temp file" in p for p in result.json()["details"])
    assert lab("reconcile", "--spec", MINIMAL, "--expected", str(REPO / "fixtures/reconciliation/expected.json"),
               "--observed", str(REPO / "fixtures/reconciliation/expected.json")).code == 0
    assert not temp.exists()
    assert lab("artifacts", "verify", "--all").code == 0


def test_links_a_crashed_staging_folder_is_reported_then_removed_by_the_next_writer(lab):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    staging = lab.root / "runs/minimal" / f".catalog.{dead}.abcd1234.tmp"
    (staging / "data").mkdir(parents=True)
    (staging / "data" / "part.parquet").write_bytes(b"half")
    result = lab("artifacts", "verify", "--all", "--json")
    problems = result.json()["details"]
    assert result.code == 4 and len(problems) == 1 and "leftover temp file" in problems[0], problems
    assert lab("reconcile", "--spec", MINIMAL, "--expected", str(REPO / "fixtures/reconciliation/expected.json"),
               "--observed", str(REPO / "fixtures/reconciliation/expected.json")).code == 0
    assert not staging.exists()


def test_install_dir_replaces_a_folder_whole_or_not_at_all(tmp_path, monkeypatch):
    from opslab import fs

    monkeypatch.setenv(fs.ROOT_ENV, str(tmp_path))
    target = tmp_path / "d" / "catalog"
    with fs.install_dir(target) as staging:
        (staging / "old").write_text("1")
    with pytest.raises(RuntimeError):
        with fs.install_dir(target) as staging:
            (staging / "new").write_text("2")
            raise RuntimeError("the writer failed")
    assert sorted(p.name for p in target.iterdir()) == ["old"]
    with fs.install_dir(target) as staging:
        (staging / "new").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["new"] and sorted(p.name for p in target.parent.iterdir()) == ["catalog"]
    with pytest.raises(fs.LinkRefused):
        with fs.install_dir(target) as staging:
            (staging / "evil").symlink_to(tmp_path)
    assert sorted(p.name for p in target.iterdir()) == ["new"]


# --- input: every input is bounded before it is parsed -------------------------------------------

def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE = {
    "empty": b"",
    "huge": b"a: " + b"x" * (2 << 20) + b"\n",
    "deep nesting": _deep_json(200_000).encode(),
    "deep yaml mapping": ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 300))).encode(),
    "long number": b'{"n": ' + b"9" * 100_001 + b"}",
    "NaN": b'{"schema_version": NaN}',
    "Infinity": b'{"schema_version": 1e999}',
    "duplicate keys": b'{"run_id": "a", "run_id": "b"}',
    "wrong type": b"[1, 2, 3]",
    "not utf-8": b"\xff\xfe\x00",
}
# Every command and every file it reads (the spec, or a state file next to a valid spec).
READERS = {
    "spec validate": lambda f: ("spec", "validate", f),
    "data prepare": lambda f: ("data", "prepare", "--spec", f),
    "run init": lambda f: ("run", "init", "--spec", f),
    "run backtest": lambda f: ("run", "backtest", "--spec", f),
    "run paper": lambda f: ("run", "paper", "--spec", f),
    "connectivity readiness": lambda f: ("connectivity", "readiness", "--spec", f),
    "connectivity probe": lambda f: ("connectivity", "probe", "--spec", f, "--url", "http://127.0.0.1:9/"),
    "reconcile spec": lambda f: ("reconcile", "--spec", f),
    "reconcile expected": lambda f: ("reconcile", "--spec", RECONCILE, "--expected", f, "--observed", str(REPO / "fixtures/reconciliation/expected.json")),
    "reconcile observed": lambda f: ("reconcile", "--spec", RECONCILE, "--observed", f),
}


@pytest.mark.parametrize("content", sorted(HOSTILE))
@pytest.mark.parametrize("command", sorted(READERS))
def test_input_hostile_file_is_exit_2_one_line_nothing_written(lab, tmp_path, command, content):
    path = tmp_path / "input.json"
    path.write_bytes(HOSTILE[content])
    result = lab(*READERS[command](str(path)))
    assert result.code == 2, (result.code, result.err[-300:])
    lines = result.err.strip().splitlines()  # one line per problem, each naming the file
    assert lines and all(line.startswith(f"error: {path}") for line in lines), result.err[-500:]
    assert "Traceback" not in result.err and "unexpected" not in result.err
    assert not lab.root.exists(), "a rejected input must not create anything"


@pytest.mark.parametrize("kind", ["/dev/zero", "directory", "missing"])
@pytest.mark.parametrize("command", sorted(READERS))
def test_input_special_paths_are_exit_2(lab, tmp_path, command, kind):
    path = {"/dev/zero": "/dev/zero", "directory": str(tmp_path), "missing": str(tmp_path / "nope.json")}[kind]
    result = lab(*READERS[command](path))
    assert result.code == 2 and path in _one_error_line(result)
    assert not lab.root.exists()


def test_input_unreadable_file_is_exit_2(tmp_path):
    """Root reads any file whatever its mode, so as root the command runs as nobody (setpriv)."""
    import shutil

    path = tmp_path / "spec.json"
    path.write_text("{}")
    path.chmod(0)
    tmp_path.chmod(0o755)
    command = [sys.executable, "-m", "opslab", "spec", "validate", str(path)]
    if AS_ROOT:
        if not shutil.which("setpriv"):
            pytest.skip("running as root and setpriv (util-linux) is missing: no unprivileged user to read as")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        probe = subprocess.run([*command[:4], sys.executable, "-c", "pass"], capture_output=True, text=True)
        if probe.returncode != 0:  # e.g. pyenv's Python under /root: its libpython is not readable by nobody
            pytest.skip(f"running as root, and nobody cannot start {sys.executable}: {probe.stderr.strip()[:160]}")
    proc = subprocess.run(command, cwd=REPO, env=tc_env(tmp_path / "a"), capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {path}: cannot read (Permission denied)"), proc.stderr


def test_input_memory_stays_bounded_on_dev_zero(tmp_path):
    """Peak RSS of the whole tc process reading /dev/zero as a spec and as an observed state."""
    code = ("import resource, subprocess, sys\n"
            "for args in (['spec', 'validate', '/dev/zero'], ['reconcile', '--spec', sys.argv[1], '--observed', '/dev/zero']):\n"
            "    rc = subprocess.run([sys.executable, '-m', 'opslab', *args], capture_output=True).returncode\n"
            "    assert rc == 2, rc\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code, RECONCILE], cwd=REPO, env=tc_env(tmp_path / "a"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stdout) / 1024
    assert peak_mib < 256, f"peak RSS {peak_mib:.0f} MiB"


def test_input_scenario_version_unknown_to_the_registry_is_exit_2(lab, tmp_path):
    spec = json.loads(Path(MINIMAL).read_text())
    spec["scenario"]["version"] = "9.9.9"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    result = lab("run", "init", "--spec", str(path))
    assert result.code == 2 and "/scenario/version: ops_smoke_demo has no version '9.9.9'" in _one_error_line(result)


# --- kill switch: state is derived from the history; disagreement fails closed --------------------

def _engaged_then(lab, edit) -> object:
    assert lab("killswitch", "engage", "--reason", "incident").code == 0
    assert lab("killswitch", "release", "--reason", "over").code == 0
    edit(lab.root / "state")
    return lab("killswitch", "status", "--json")


def _lose_last_state_write(state: Path) -> None:
    """A SIGKILL between the history append and the state write: history says engaged, state released."""
    from opslab import journal

    env_root = os.environ.get("TC_ARTIFACTS_DIR")
    os.environ["TC_ARTIFACTS_DIR"] = str(state.parent)
    try:
        journal.append_record(state / "kill_switch_events.jsonl", {"action": "engage", "by": "x@y", "reason": "crash", "forced": False})
    finally:
        os.environ.pop("TC_ARTIFACTS_DIR") if env_root is None else os.environ.__setitem__("TC_ARTIFACTS_DIR", env_root)


KS_TAMPER = {
    "crash between history and state": _lose_last_state_write,
    "hand edit of the state": lambda s: (s / "kill_switch.json").write_text(
        json.dumps({**json.loads((s / "kill_switch.json").read_text()), "state": "engaged"})),
    "history deleted": lambda s: (s / "kill_switch_events.jsonl").unlink(),
    "history edited": lambda s: (s / "kill_switch_events.jsonl").write_text(
        (s / "kill_switch_events.jsonl").read_text().replace("incident", "accident")),
    "history truncated": lambda s: (s / "kill_switch_events.jsonl").write_text((s / "kill_switch_events.jsonl").read_text().splitlines()[0] + "\n"),
}


@pytest.mark.parametrize("case", sorted(KS_TAMPER))
def test_killswitch_disagreement_fails_closed_blocks_runs_and_verify_reports_it(lab, case):
    status = _engaged_then(lab, KS_TAMPER[case])
    assert status.code == 3 and status.json()["status"] == "engaged"
    assert status.json()["data"]["kill_switch"]["state"] == "corrupt"
    assert "release --force" in status.json()["summary"]
    assert lab("run", "paper", "--spec", str(SPECS / "paper-demo.yaml")).code == 3
    verify = lab("artifacts", "verify", "--all", "--json")
    assert verify.code == 4 and any(p.startswith("state: kill switch state cannot be trusted") for p in verify.json()["details"])
    repaired = lab("killswitch", "release", "--force", "--reason", "inspected")
    assert repaired.code == 0 or case in ("history edited", "history truncated")


def test_killswitch_hand_edit_to_released_no_longer_lets_paper_run(lab):
    assert lab("killswitch", "engage", "--reason", "incident").code == 0
    state = lab.root / "state/kill_switch.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "state": "released"}))
    assert lab("run", "paper", "--spec", str(SPECS / "paper-demo.yaml")).code == 3


# --- verify covers every artifact under the root -------------------------------------------------

def test_verify_a_changed_byte_in_a_datasets_bars_is_found(lab):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    bars = next((lab.root / "datasets").glob("*/bars.csv"))
    raw = bytearray(bars.read_bytes())
    raw[-3] = ord("9") if raw[-3] != ord("9") else ord("8")
    bars.write_bytes(bytes(raw))
    result = lab("artifacts", "verify", "--all", "--json")
    assert result.code == 4 and any("bars.csv: fingerprint" in p for p in result.json()["details"])


def test_verify_an_edited_dataset_manifest_is_found(lab):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    manifest = next((lab.root / "datasets").glob("*/manifest.json"))
    manifest.write_text(manifest.read_text().replace('"rows": 120', '"rows": 119'))
    result = lab("artifacts", "verify", "--all", "--json")
    assert result.code == 4 and any("120 rows, the manifest says" in p for p in result.json()["details"])


def test_verify_an_edited_scorecard_and_unknown_drill_files_are_found(lab):
    from opslab import digests

    drills = lab.root / "drills"
    card = {"schema_version": 1, "total": 1, "passed": 1, "failed": 0, "finished_at": "2024-01-01T00:00:00Z",
            "drills": [{"drill": "x", "verdict": "pass", "detected": True, "runbook": "runbooks/x.md",
                        "time_to_detect": {"value": 1, "unit": "ms"}}]}
    drills.mkdir(parents=True)
    (drills / "scorecard.json").write_text(json.dumps(card))
    env = os.environ.get("TC_ARTIFACTS_DIR")
    os.environ["TC_ARTIFACTS_DIR"] = str(lab.root)
    try:
        digests.write_manifest(drills / "manifest.json", "drills", drills, ["scorecard.json"])
    finally:
        os.environ.pop("TC_ARTIFACTS_DIR") if env is None else os.environ.__setitem__("TC_ARTIFACTS_DIR", env)
    assert lab("artifacts", "verify", "--all").code == 0
    (drills / "scorecard.json").write_text(json.dumps({**card, "passed": 0, "failed": 1}))
    (drills / "notes.txt").write_text("hi")
    problems = lab("artifacts", "verify", "--all", "--json").json()["details"]
    assert any("drills/scorecard.json: digest does not match" in p for p in problems), problems
    assert any("drills/notes.txt: unknown file" in p for p in problems), problems


def test_verify_an_extra_file_and_a_symlinked_run_folder_are_found(lab, tmp_path):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    (lab.root / "runs/minimal/notes.json").write_text("{}")
    problems = lab("artifacts", "verify", "--all", "--json").json()["details"]
    assert any("runs/minimal/notes.json: unknown file" in p for p in problems), problems
    assert any("runs/minimal/notes.json: not in manifest.json" in p for p in problems), problems


def test_verify_with_a_key_rewriting_a_file_and_its_manifest_is_found(lab):
    keyed = {"TC_MANIFEST_KEY": "lab-secret"}
    assert lab("run", "init", "--spec", MINIMAL, **keyed).code == 0
    assert lab("artifacts", "verify", "--all", **keyed).code == 0
    folder = lab.root / "runs/minimal"
    metrics = folder / "metrics.json"
    metrics.write_text(metrics.read_text().replace("120", "121"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["metrics.json"] = "sha256:" + hashlib.sha256(metrics.read_bytes()).hexdigest()  # the attacker's rewrite
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert lab("artifacts", "verify", "--all").code == 0  # without a key this goes unseen: the documented limit
    problems = lab("artifacts", "verify", "--all", "--json", **keyed).json()["details"]
    assert any("hmac does not match" in p for p in problems), problems
    del manifest["hmac"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    problems = lab("artifacts", "verify", "--all", "--json", **keyed).json()["details"]
    assert any("no hmac, but TC_MANIFEST_KEY is set" in p for p in problems), problems
    assert "lab-secret" not in "".join(p.read_text(errors="replace") for p in lab.root.rglob("*") if p.is_file())


# --- stored text never forges output --------------------------------------------------------------

FORGERY = "ok\x1b[2J\x1b[31mfake\nerror: forged line\r|col|"


def test_escape_a_reason_with_escapes_and_newlines_prints_as_one_escaped_line(lab):
    assert lab("killswitch", "engage", "--reason", FORGERY).code == 0
    result = lab("killswitch", "status")
    assert result.code == 3
    assert result.out.count("\n") == 1 and "\x1b" not in result.out and "\\x1b[2J" in result.out
    as_json = lab("killswitch", "status", "--json").json()
    assert as_json["data"]["kill_switch"]["reason"] == FORGERY  # data stays exact; only the display is escaped


def test_escape_stored_text_in_report_md_cannot_break_its_tables(lab):
    assert lab("killswitch", "engage", "--reason", FORGERY).code == 0
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    report = (lab.root / "runs/minimal/report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| reason |"))
    assert row.count("|") - row.count("\\|") == 3 and "\x1b" not in report


def test_escape_reasons_are_capped(lab):
    result = lab("killswitch", "engage", "--reason", "x" * 201)
    assert result.code == 2 and "at most 200" in _one_error_line(result)


# --- misconfigured roots ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [("artifacts", "verify", "--all"), ("killswitch", "status"), ("run", "list"), ("metrics", "dump")])
def test_root_missing_or_a_file_is_exit_2_for_readers(tmp_path, command):
    from conftest import run_tc

    for root in (tmp_path / "typo", tmp_path / "file"):
        if root.name == "file":
            root.write_text("x")
        result = run_tc(*command, artifacts=root)
        assert result.code == 2 and str(root) in _one_error_line(result), (root, result.err)


def test_root_that_cannot_be_created_is_exit_2_for_writers(tmp_path):
    from conftest import run_tc

    result = run_tc("run", "init", "--spec", MINIMAL, artifacts=Path("/proc/tc-cannot-exist"))
    assert result.code == 2 and "/proc/tc-cannot-exist" in _one_error_line(result)


def test_root_check_writes_nothing_and_creates_no_folder(lab):
    for command in (("run", "init", "--spec", MINIMAL, "--check"), ("data", "prepare", "--spec", MINIMAL, "--check"),
                    ("killswitch", "engage", "--reason", "x", "--check")):
        assert lab(*command).code == 0
    assert not lab.root.exists()


# --- file modes -------------------------------------------------------------------------------------

def test_modes_artifacts_are_readable_by_others_under_the_default_umask(lab):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    assert lab("killswitch", "engage", "--reason", "x").code == 0
    old = os.umask(0)
    os.umask(old)
    for path in lab.root.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~old
        assert mode == want, (path, oct(mode), oct(want))


def test_modes_a_stricter_umask_is_honoured(tmp_path):
    code = f"import os, sys; os.umask(0o077); from opslab.cli import main; sys.exit(main(['run', 'init', '--spec', {MINIMAL!r}]))"
    root = tmp_path / "artifacts"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(root), capture_output=True).returncode == 0
    assert stat.S_IMODE((root / "runs/minimal/metadata.json").stat().st_mode) == 0o600


def test_nothing_is_written_by_a_rejected_command(lab, tmp_path):
    """A sweep sanity check: the lab fixture root is untouched by every bad-input case above."""
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    before = tree_bytes(lab.root)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    for command in READERS.values():
        assert lab(*command(str(bad))).code == 2
    assert tree_bytes(lab.root) == before
