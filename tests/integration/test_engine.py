"""The real NautilusTrader engine behind `tc run backtest` and `tc run paper`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EPOCH, REPO, SPECS, run_tc, tc_env, tree_bytes, wait_for_paper_steps

pytestmark = pytest.mark.integration
DEMO = str(SPECS / "demo.yaml")
PAPER = str(SPECS / "paper-demo.yaml")


def _events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def backtest_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bt") / "artifacts"
    assert run_tc("data", "prepare", "--spec", DEMO, artifacts=root, SOURCE_DATE_EPOCH=EPOCH).code == 0
    result = run_tc("run", "backtest", "--spec", DEMO, "--json", artifacts=root, SOURCE_DATE_EPOCH=EPOCH)
    assert result.code == 0, result.err
    return root, result


def test_backtest_exercises_orders_fills_and_positions(backtest_root):
    root, result = backtest_root
    counters = result.json()["data"]["counters"]
    assert counters["bars_processed"] == 1440
    assert counters["orders_submitted"] > 0 and counters["fills"] > 0
    assert counters["positions_closed"] >= 1 and counters["positions_opened"] > counters["positions_closed"]
    folder = root / "runs" / "demo"
    final = json.loads((folder / "final_state.json").read_text())
    assert final["source"] == "backtest" and len(final["positions"]) == 1 and len(final["open_orders"]) == 1
    fills = json.loads((folder / "fills.json").read_text())["fills"]
    assert len(fills) == counters["fills"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["engine_summary"]["counters"] == counters
    assert [e["event"] for e in _events(folder)][-2:] == ["backtest_started", "backtest_completed"]
    assert "## Scenario execution" in (folder / "report.md").read_text()
    assert run_tc("artifacts", "verify", "--all", artifacts=root).code == 0


def test_backtest_rerun_is_ok_and_rewrites_nothing(backtest_root):
    root, _ = backtest_root
    before = tree_bytes(root)
    again = run_tc("run", "backtest", "--spec", DEMO, "--json", artifacts=root, SOURCE_DATE_EPOCH=EPOCH)
    assert again.code == 0 and again.json()["status"] == "ok"
    assert tree_bytes(root) == before


def test_backtest_is_byte_identical_across_processes(backtest_root, tmp_path):
    root, _ = backtest_root
    other = tmp_path / "artifacts"
    assert run_tc("data", "prepare", "--spec", DEMO, artifacts=other, SOURCE_DATE_EPOCH=EPOCH).code == 0
    assert run_tc("run", "backtest", "--spec", DEMO, artifacts=other, SOURCE_DATE_EPOCH=EPOCH).code == 0
    assert tree_bytes(other) == tree_bytes(root)


def _on_terminal(*args: str, artifacts: Path) -> tuple[int, str, str]:
    """Run tc with stderr on a pseudo-terminal (stdout a pipe); exit code, stdout, terminal text."""
    import pty

    master, slave = pty.openpty()
    env = tc_env(artifacts, SOURCE_DATE_EPOCH=EPOCH)
    proc = subprocess.Popen([sys.executable, "-m", "opslab", *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=300), out, b"".join(chunks).decode()


def test_long_work_shows_progress_on_a_terminal_only(backtest_root, tmp_path):
    root, plain = backtest_root
    assert "bars" not in plain.err  # stderr not a terminal (and --json): no progress
    other = tmp_path / "artifacts"
    assert run_tc("data", "prepare", "--spec", DEMO, artifacts=other, SOURCE_DATE_EPOCH=EPOCH).code == 0
    code, out, terminal = _on_terminal("run", "backtest", "--spec", DEMO, artifacts=other)
    assert code == 0 and "backtest completed" in out
    assert "\r  bars 1440/1440" in terminal
    assert tree_bytes(other) == tree_bytes(root)  # progress changes no artifact
    assert run_tc("data", "prepare", "--spec", PAPER, artifacts=other).code == 0
    code, _, terminal = _on_terminal("run", "paper", "--spec", PAPER, artifacts=other)
    assert code == 0 and "\r  step 12/12" in terminal
    third = tmp_path / "third"
    assert run_tc("data", "prepare", "--spec", DEMO, artifacts=third, SOURCE_DATE_EPOCH=EPOCH).code == 0
    code, out, terminal = _on_terminal("run", "backtest", "--spec", DEMO, "--json", artifacts=third)
    assert code == 0 and json.loads(out)["status"] == "changed" and "bars " not in terminal


def test_engine_output_never_reaches_the_cli(backtest_root, tmp_path):
    other = tmp_path / "artifacts"
    run_tc("data", "prepare", "--spec", DEMO, artifacts=other)
    result = run_tc("run", "backtest", "--spec", DEMO, artifacts=other)
    assert result.err == "" and len(result.out.strip().splitlines()) == 1


def _spec(tmp_path: Path, base: str, **changes) -> str:
    data = yaml.safe_load(Path(base).read_text())
    for dotted, value in changes.items():
        node = data
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("command, spec_base, changes, needle", [
    ("paper", DEMO, {}, "/engine/kind: is 'backtest', but `tc run paper` needs 'paper'"),
    ("backtest", PAPER, {}, "/engine/kind: is 'paper', but `tc run backtest` needs 'backtest'"),
    ("paper", PAPER, {"engine.paper.steps": 0}, "/engine/paper/steps: 0 is less than the minimum of 1"),
    ("paper", PAPER, {"engine.paper.bars_per_step": -5}, "/engine/paper/bars_per_step: -5 is less than the minimum"),
    ("paper", PAPER, {"engine.paper.steps": 10**9}, "/engine/paper/steps: 1000000000 is greater than the maximum"),
    ("backtest", DEMO, {"engine.max_bars": 0}, "/engine/max_bars: 0 is less than the minimum of 1"),
    ("backtest", DEMO, {"scenario.name": "moon_shot"}, "/scenario/name: 'moon_shot' is not one of ['ops_smoke_demo', 'ops_smoke_futures']"),
])
def test_bad_engine_input_exits_2(tmp_path, command, spec_base, changes, needle):
    root = tmp_path / "artifacts"
    result = run_tc("run", command, "--spec", _spec(tmp_path, spec_base, **changes), artifacts=root)
    assert result.code == 2 and needle in result.err and result.err.count("\n") == 1, result.err
    assert not (root / "runs").exists()


def test_a_missing_dataset_is_prepared_and_a_corrupt_one_points_at_prepare(tmp_path):
    root = tmp_path / "artifacts"
    plan = run_tc("run", "backtest", "--spec", DEMO, "--check", "--json", artifacts=root)
    assert plan.code == 0 and plan.json()["status"] == "changed" and "would create dataset" in plan.json()["summary"]
    assert not root.exists()
    assert run_tc("data", "prepare", "--spec", DEMO, artifacts=root).code == 0
    bars = next(root.glob("datasets/*/bars.csv"))
    bars.write_bytes(bars.read_bytes()[:-10] + b"9999999999")
    corrupt = run_tc("run", "backtest", "--spec", DEMO, artifacts=root)
    assert corrupt.code == 2 and "does not match its manifest" in corrupt.err and "tc data prepare" in corrupt.err
    assert not (root / "runs").exists()


def test_stale_dataset_is_refused_before_trading(tmp_path):
    root = tmp_path / "artifacts"
    spec = _spec(tmp_path, DEMO, **{"safety.max_data_age_seconds": 3600})
    assert run_tc("data", "prepare", "--spec", spec, artifacts=root).code == 0
    result = run_tc("run", "backtest", "--spec", spec, "--json", artifacts=root)
    assert result.code == 4 and "older than safety.max_data_age_seconds=3600" in result.json()["summary"]
    folder = root / "runs" / "demo"
    assert not (folder / "orders.json").exists()
    assert [e["event"] for e in _events(folder)][-1] == "data_stale_detected"
    assert json.loads((folder / "metadata.json").read_text())["status"] == "blocked"


@pytest.fixture()
def paper_root(tmp_path):
    root = tmp_path / "artifacts"
    assert run_tc("data", "prepare", "--spec", PAPER, artifacts=root).code == 0
    return root


def test_paper_lifecycle_completes_and_is_idempotent(paper_root):
    result = run_tc("run", "paper", "--spec", PAPER, "--json", artifacts=paper_root)
    assert result.code == 0, result.err
    life = result.json()["data"]["lifecycle"]
    assert [t["state"] for t in life["transitions"]] == ["created", "preflight", "running", "stopping", "stopped"]
    assert life["stop_reason"] == "completed" and life["steps_done"] == 12
    folder = paper_root / "runs" / "paper-demo"
    assert json.loads((folder / "final_state.json").read_text())["source"] == "paper"
    assert run_tc("run", "paper", "--spec", PAPER, "--json", artifacts=paper_root).json()["status"] == "ok"
    assert run_tc("artifacts", "verify", "--all", artifacts=paper_root).code == 0


def test_gate_between_steps_halts_and_cancels_open_orders(paper_root):
    code = (
        "import json, os\n"
        "from opslab import spec\nfrom opslab.runs import paper\n"
        "calls = []\n"
        "def after_two():\n    calls.append(1)\n    return 'engaged by test' if len(calls) >= 2 else None\n"
        f"res = paper.run_paper(spec.load({PAPER!r}), [], [paper.Gate('kill_switch', after_two)])\n"
        "print(json.dumps(res.data['lifecycle']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(paper_root), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    life = json.loads(proc.stdout.strip().splitlines()[-1])
    assert life["stop_reason"] == "kill_switch" and life["steps_done"] == 2
    assert life["cancelled_orders"] == ["O-20240101-000100-001-000-1"]
    folder = paper_root / "runs" / "paper-demo"
    orders = {o["client_order_id"]: o for o in json.loads((folder / "orders.json").read_text())["orders"]}
    assert orders["O-20240101-000100-001-000-1"]["status"] == "CANCELED"
    assert json.loads((folder / "final_state.json").read_text())["open_orders"] == []


def test_preflight_gate_blocks_with_exit_3(paper_root):
    code = (
        "import sys\nfrom opslab import spec\nfrom opslab.runs import paper\n"
        f"res = paper.run_paper(spec.load({PAPER!r}), [paper.Gate('kill_switch', lambda: 'engaged')])\n"
        "sys.exit(res.exit_code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(paper_root), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    folder = paper_root / "runs" / "paper-demo"
    assert json.loads((folder / "paper/lifecycle.json").read_text())["state"] == "blocked"
    assert _events(folder)[-1]["event"] == "paper_blocked"
    assert not (folder / "orders.json").exists()


def _start_slow_paper(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "opslab", "run", "paper", "--spec", PAPER, "--json"], cwd=REPO,
                            env=tc_env(root, TC_TEST_STEP_DELAY_MS="250"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(root: Path, n: int, proc: subprocess.Popen) -> None:
    wait_for_paper_steps(root / "runs" / "paper-demo" / "journal.jsonl", n, proc)


def test_sigterm_stops_gracefully(paper_root):
    proc = _start_slow_paper(paper_root)
    _wait_for_steps(paper_root, 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    life = json.loads(out.strip().splitlines()[-1])["data"]["lifecycle"]
    assert life["stop_reason"] == "signal SIGTERM" and life["state"] == "stopped" and life["steps_done"] < 12
    assert run_tc("artifacts", "verify", "--all", artifacts=paper_root).code == 0


def test_sigkill_is_recovered_without_duplicates(paper_root, tmp_path):
    proc = _start_slow_paper(paper_root)
    _wait_for_steps(paper_root, 3, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    result = run_tc("run", "paper", "--spec", PAPER, "--json", artifacts=paper_root)
    assert result.code == 0, result.err
    life = result.json()["data"]["lifecycle"]
    assert life["recoveries"] == 1 and "recovered" in [t["state"] for t in life["transitions"]]
    folder = paper_root / "runs" / "paper-demo"
    events = _events(folder)
    steps = [e["data"]["step"] for e in events if e["event"] == "paper_step"]
    assert steps == list(range(1, 13)), steps
    assert sum(e["event"] == "paper_recovered" for e in events) == 1
    assert run_tc("artifacts", "verify", "--all", artifacts=paper_root).code == 0
    clean = tmp_path / "clean"
    run_tc("data", "prepare", "--spec", PAPER, artifacts=clean)
    run_tc("run", "paper", "--spec", PAPER, artifacts=clean)
    assert (folder / "final_state.json").read_bytes() == (clean / "runs/paper-demo/final_state.json").read_bytes()
