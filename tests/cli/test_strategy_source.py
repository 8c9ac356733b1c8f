"""A strategy named by the spec: located and hashed at load time without importing (or running) it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import yaml

from conftest import FIXTURES, REPO, SPECS, tc_env

BYO = SPECS / "byo-backtest.yaml"


def _spec(tmp_path, **strategy):
    """byo-backtest.yaml copied next to a copy of the fixture strategies, with strategy fields replaced."""
    shutil.copytree(FIXTURES / "strategies", tmp_path / "strategies")
    (tmp_path / "specs").mkdir()
    doc = yaml.safe_load(BYO.read_text())
    doc["strategy"].update(strategy)
    path = tmp_path / "specs" / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _validate(tmp_path, spec):
    code = ("import sys, json\nfrom opslab.cli import main\n"
            f"rc = main(['spec', 'validate', {str(spec)!r}, '--json'])\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('nautilus_trader', 'labuser')))), file=sys.stderr)\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(tmp_path / "a"), capture_output=True, text=True)
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


def test_validate_locates_and_hashes_without_importing(tmp_path):
    spec = _spec(tmp_path)
    proc, modules = _validate(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr
    assert modules == []  # neither NautilusTrader nor the user's code ran
    block = json.loads(proc.stdout)["data"]["spec"]["strategy"]
    import hashlib
    digest = hashlib.sha256((tmp_path / "strategies/labuser/meanrev.py").read_bytes()).hexdigest()
    assert block["source"] == [{"module": "labuser.meanrev", "sha256": digest}]


def test_config_hash_covers_the_strategy_source(tmp_path):
    spec = _spec(tmp_path)
    before = json.loads(_validate(tmp_path, spec)[0].stdout)["data"]["config_hash"]
    source = tmp_path / "strategies/labuser/meanrev.py"
    source.write_text(source.read_text() + "\n# a change of code\n")
    after = json.loads(_validate(tmp_path, spec)[0].stdout)["data"]["config_hash"]
    assert before != after


def test_a_source_written_in_the_spec_is_replaced(tmp_path):
    spec = _spec(tmp_path, source=[{"module": "labuser.meanrev", "sha256": "0" * 64}])
    proc, _ = _validate(tmp_path, spec)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["data"]["spec"]["strategy"]["source"][0]["sha256"] != "0" * 64


def test_builtin_scenario_is_written_out_as_an_importable_strategy(tmp_path):
    proc, _ = _validate(tmp_path, SPECS / "demo.yaml")
    block = json.loads(proc.stdout)["data"]["spec"]["strategy"]
    assert block["strategy_path"] == "opslab.engine.smoke:SmokeStrategy" and block["config_path"] == "opslab.engine.smoke:SmokeConfig"
    assert block["config"]["order_every_bars"] == 60 and block["source"][0]["module"] == "opslab.engine.smoke"


def test_missing_module_is_exit_2_at_validate(tmp_path):
    spec = _spec(tmp_path, strategy_path="labuser.nothere:X", config_path="labuser.nothere:Y")
    proc, modules = _validate(tmp_path, spec)
    assert proc.returncode == 2 and modules == []
    line = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "/strategy/strategy_path: module 'labuser.nothere' not found in" in line[0]


def test_search_path_must_be_a_folder(tmp_path):
    spec = _spec(tmp_path, search_path="../nowhere")
    proc, _ = _validate(tmp_path, spec)
    assert proc.returncode == 2 and "/strategy/search_path:" in proc.stderr and "is not a folder" in proc.stderr


def test_strategy_path_without_config_path_is_exit_2(tmp_path):
    doc = yaml.safe_load(BYO.read_text())
    del doc["strategy"]["config_path"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc, _ = _validate(tmp_path, path)
    assert proc.returncode == 2 and "config_path" in proc.stderr
