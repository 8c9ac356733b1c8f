"""Where NautilusTrader may be imported: only opslab/engine/, and not before a node run passes preflight."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO, tc_env

PACKAGE = REPO / "opslab"


def _imports_nautilus(path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n == "nautilus_trader" or n.startswith("nautilus_trader.") for n in names):
            return True
    return False


def test_nautilus_is_imported_only_under_engine():
    offenders = [p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*.py") if _imports_nautilus(p) and "engine" not in p.relative_to(PACKAGE).parts[:1]]
    assert offenders == []
    assert _imports_nautilus(PACKAGE / "engine" / "live.py")  # the check can see an import
    assert not _imports_nautilus(PACKAGE / "runs" / "node.py")  # preflight and the run folder stay light


def test_node_preflight_failure_never_imports_nautilus(tmp_path):
    code = ("import sys\nfrom opslab import cli\ncode = cli.main(['run', 'node', '--spec', sys.argv[1]])\n"
            "print(code, any(m.startswith('nautilus_trader') for m in sys.modules))")
    spec = REPO / "fixtures" / "specs" / "node-demo.yaml"
    out = subprocess.run([sys.executable, "-c", code, str(spec)], cwd=REPO, env=tc_env(tmp_path / "artifacts"), capture_output=True, text=True)
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert "TC_BINANCE_API_KEY: not set" in out.stderr
