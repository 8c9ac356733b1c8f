"""CLI behaviour: help everywhere, version, usage errors, and no Nautilus import on the fast paths."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from conftest import REPO, SPECS, tc_env
from opslab.cli import build_parser



def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every leaf command of the real parser (so a new command cannot miss this test)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [list(prefix)]
    return [leaf for name, child in subs[0].choices.items() for leaf in _leaves(child, (*prefix, name))]


LEAVES = _leaves(build_parser())


@pytest.mark.parametrize("leaf", LEAVES, ids=" ".join)
def test_every_command_has_help_with_examples(lab, leaf):
    result = lab(*leaf, "--help")
    assert result.code == 0
    assert "examples:" in result.out and "--json" in result.out


def test_venue_fault_help_names_every_fault_of_the_registry():
    from opslab.venue import faults

    venue = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["venue"]
    serve = next(a for a in venue._actions if isinstance(a, argparse._SubParsersAction)).choices["serve"]
    text = next(a for a in serve._actions if "--fault" in a.option_strings).help
    assert all(name in text for name in faults.FAULT_NAMES)


def test_version(lab):
    result = lab("--version")
    assert result.code == 0 and result.out.startswith("tc (opslab) ")


@pytest.mark.parametrize("argv, needle", [([], "the following arguments are required: COMMAND"),
                                          (["frobnicate"], "invalid choice: 'frobnicate'"),
                                          (["data", "prepare"], "the following arguments are required: --spec"),
                                          (["venue", "serve", "--port", "99999"], "--port: 99999 is out of range (expected 0-65535)"),
                                          (["metrics", "serve", "--port", "x"], "--port: 'x' is not a port number"),
                                          (["drlls"], "invalid choice: 'drlls' (choose from"),
                                          (["drlls"], "; did you mean 'drill'?"),
                                          (["run", "shwo", "x"], "did you mean 'show'?"),
                                          (["drill", "list", "--kind", "nde"], "did you mean 'node'?"),
                                          (["run", "list", "--jsn"], "tc run list: unrecognized arguments: --jsn; --jsn: did you mean '--json'?"),
                                          (["drill", "run", "mismatch", "--kindd=node"], "--kindd: did you mean '--kind'?"),
                                          (["drill", "run", "mismatch", "--frobnicate"], "(see 'tc drill run --help')")])
def test_usage_errors_are_one_line_exit_2(lab, argv, needle):
    result = lab(*argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and needle in result.err and "--help" in result.err


def test_a_command_far_from_every_known_one_gets_no_guess(lab):
    result = lab("frobnicate")
    assert result.code == 2 and "invalid choice" in result.err and "did you mean" not in result.err
    result = lab("run", "list", "--frobnicate")
    assert result.code == 2 and "unrecognized arguments: --frobnicate" in result.err and "did you mean" not in result.err


MINIMAL = str(SPECS / "minimal.json")


@pytest.mark.parametrize("argv", [["--json", "run", "list"], ["run", "--json", "list"], ["run", "list", "--json"]],
                         ids=["before-group", "between", "after"])
def test_json_works_before_between_and_after_the_command_words(lab, argv):
    assert lab("run", "init", "--spec", MINIMAL).code == 0
    result = lab(*argv)
    assert result.code == 0, result.err
    assert [r["run_id"] for r in result.json()["data"]["runs"]] == ["minimal"]


def test_traceback_is_accepted_between_a_group_and_its_command(lab):
    assert lab("drill", "--traceback", "list").code == 0


def _documented_error_envelope() -> dict:
    """The example object of docs/cli.md's "Errors as JSON" section."""
    text = (REPO / "docs" / "cli.md").read_text().split("## Errors as JSON", 1)[1]
    return json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])


@pytest.mark.parametrize("argv, code", [(["drlls", "--json"], 2), (["run", "show", "nope", "--json"], 2),
                                        (["--json", "artifacts", "verify", "--all"], 2)],
                         ids=["usage", "unknown-run", "missing-root"])
def test_json_errors_are_the_documented_result_envelope(lab, argv, code):
    documented = _documented_error_envelope()
    result = lab(*argv)
    assert result.code == code and result.err.startswith("error: ")
    doc = result.json()  # exactly one JSON object on stdout
    assert set(doc) == set(documented) == {"status", "summary", "artifacts", "data", "details", "exit_code"}
    assert doc["status"] == documented["status"] == "error" and doc["exit_code"] == code
    assert doc["artifacts"] == [] and doc["data"] == {}
    assert doc["details"] == [line.removeprefix("error: ") for line in result.err.splitlines()]
    assert doc["summary"] == doc["details"][0]


def test_a_json_error_with_several_problems_has_one_detail_each(lab, tmp_path):
    spec = tmp_path / "spec.json"
    data = json.loads((SPECS / "minimal.json").read_text())
    spec.write_text(json.dumps({**data, "run_id": "a b", "colour": 1}))
    doc = lab("spec", "validate", str(spec), "--json").json()
    assert doc["status"] == "error" and len(doc["details"]) == 2 and doc["summary"] == doc["details"][0]
    assert all(line.startswith(f"{spec}: /") for line in doc["details"])


def test_help_says_what_the_kill_switch_gates_and_it_does(lab):
    """The help claims paper and node runs are gated and backtests are not: both halves hold."""
    help_text = " ".join(lab("--help").out.split())
    assert "nothing starts" not in help_text
    assert "paper and node runs do not start" in help_text and "backtests are offline replays and still run" in help_text
    assert lab("killswitch", "engage", "--reason", "help check").code == 0
    blocked = lab("run", "paper", "--spec", str(SPECS / "paper-demo.yaml"))
    assert blocked.code == 3 and blocked.out.startswith("blocked:")
    assert lab("run", "backtest", "--spec", MINIMAL).code == 0


@pytest.mark.parametrize("value", ["abc", "70000", "-1"])
def test_bad_metrics_port_in_the_environment_is_one_line_exit_2(lab, value):
    result = lab("metrics", "serve", TC_METRICS_PORT=value)
    assert result.code == 2 and result.err.count("\n") == 1 and result.err.startswith("error: TC_METRICS_PORT: ")


def _modules_after(tmp_path, *argv: str) -> set[str]:
    code = (
        "import sys, json\nfrom opslab.cli import main\n"
        f"rc = main({list(argv)!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('nautilus_trader'))), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(tmp_path / "a"), capture_output=True, text=True)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["spec", "validate", str(SPECS / "demo.yaml")],
                                  ["data", "prepare", "--spec", str(SPECS / "minimal.json"), "--check"],  # writing one: NautilusTrader's catalog writer
                                  ["data", "fingerprint", str(SPECS / "demo.yaml")], ["artifacts", "verify", "--all"],
                                  ["artifacts", "collect", "sweep", "--count", "2"]],
                         ids=["validate", "prepare", "fingerprint", "verify", "collect"])
def test_fast_paths_never_import_nautilus(tmp_path, argv):
    assert _modules_after(tmp_path, *argv) == set()


def test_help_does_not_import_nautilus_via_subprocess(tmp_path):
    code = ("import sys\nfrom opslab import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(any(m.startswith('nautilus_trader') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(tmp_path), capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "False"


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return list(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def test_a_command_word_builds_only_its_part_of_the_tree_and_anything_else_the_whole():
    every = _commands(build_parser())
    assert every[:3] == ["spec", "data", "run"] and "venue" in every and len(every) == 12
    assert _commands(build_parser(["spec", "validate", "x.yaml"])) == ["spec"]
    assert _commands(build_parser(["--json", "drill", "run", "--kind", "node"])) == ["drill"]
    for argv in ([], ["--help"], ["sepc", "validate"], ["--json"]):
        assert _commands(build_parser(argv)) == every, argv


def test_spec_validate_imports_neither_the_venue_nor_the_other_commands_parts(tmp_path):
    code = ("import sys; from opslab.cli.main import main; rc = main(['spec', 'validate', sys.argv[1]]); "
            "print(rc, sorted(m for m in sys.modules if m.startswith(('opslab.venue', 'opslab.drills.runner', 'nautilus_trader'))))")
    done = subprocess.run([sys.executable, "-c", code, str(SPECS / "demo.yaml")], capture_output=True, text=True, env=tc_env(tmp_path / "artifacts"))
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
