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
                                          (["metrics", "serve", "--port", "x"], "--port: 'x' is not a port number")])
def test_usage_errors_are_one_line_exit_2(lab, argv, needle):
    result = lab(*argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and needle in result.err and "--help" in result.err


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
                                  ["data", "fingerprint", str(SPECS / "demo.yaml")], ["artifacts", "verify", "--all"]],
                         ids=["validate", "prepare", "fingerprint", "verify"])
def test_fast_paths_never_import_nautilus(tmp_path, argv):
    assert _modules_after(tmp_path, *argv) == set()


def test_help_does_not_import_nautilus_via_subprocess(tmp_path):
    code = ("import sys\nfrom opslab import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(any(m.startswith('nautilus_trader') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=tc_env(tmp_path), capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "False"
