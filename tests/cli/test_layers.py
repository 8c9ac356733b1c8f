"""The layer contracts in pyproject.toml ([tool.importlinter]) hold for the tree, and a wrong import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

LINT = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "opslab", tree / "opslab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_contract():
    out = _lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("spec.py", "from opslab.runs import run  # noqa", "Nothing imports upward"),      # the ground floor reaching a room
    ("engine/session.py", "from opslab.datasets import store  # noqa", "Nothing imports upward"),  # the old loop's arrow
    ("report/markdown.py", "import nautilus_trader  # noqa", "Only engine/ imports NautilusTrader"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    tree = _copy(tmp_path)
    path = tree / "opslab" / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    out = _lint(tree)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 kept, 1 broken" in out.stdout, out.stdout
    after = out.stdout.split("Broken contracts", 1)[1]  # import-linter names each broken contract, then its chains
    assert contract in after and line.split("  #")[0].split()[-1] in after, out.stdout
