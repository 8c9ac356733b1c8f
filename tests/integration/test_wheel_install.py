"""What a user who adds the lab to their own NautilusTrader project does (docs/engine-profiles.md, Install
into your own project): build the wheel, install it with its dependencies into a fresh venv beside the
engine release this suite runs on, and drive `opslab` from a folder outside the checkout. Nothing from
the checkout is on the path there: the configs the node drills need and the runbooks come from the wheel."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from opslab.drills.node import stack

pytestmark = pytest.mark.integration

# What the wheel is built from: pyproject.toml's package-dir (the Containerfile copies the same).
SOURCES = ("pyproject.toml", "README.md", "opslab", "schemas", "prometheus", "alertmanager", "docs/runbooks")


def _base_python() -> Path:
    """The interpreter this suite's venv was made from (a fresh venv must not see the suite's packages)."""
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    if not cfg.is_file():
        return Path(sys.executable)
    home = next(line.split("=", 1)[1].strip() for line in cfg.read_text().splitlines() if line.startswith("home"))
    return next(p for p in (Path(home) / f"python3.{sys.version_info.minor}", Path(home) / "python3", Path(home) / "python") if p.exists())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the built wheel, its dependencies and this suite's nautilus_trader release: its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    for rel in SOURCES:  # a copy, so the build writes its build/ and egg-info there, not into the checkout
        if (REPO / rel).is_dir():
            shutil.copytree(REPO / rel, src / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / rel, src / rel)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "--disable-pip-version-check",
                            "-w", str(work / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((work / "dist").glob("opslab-*.whl"))
    subprocess.run([str(_base_python()), "-m", "venv", str(work / "venv")], check=True, timeout=120)
    engine = importlib.metadata.version("nautilus_trader")
    # from a fresh shell: with this checkout on PYTHONPATH (as the suite runs) pip would find its opslab.egg-info and
    # take the lab as "already satisfied", installing its dependencies but not the wheel
    pip = subprocess.run([str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          str(wheel), f"nautilus_trader=={engine}"], env=_shell_env(), capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return work / "venv" / "bin"


def _shell_env() -> dict[str, str]:
    """A fresh shell's environment: no PYTHONPATH, no virtualenv, no TC_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TC_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "SOURCE_DATE_EPOCH")}


def _env(root: Path) -> dict[str, str]:
    """A fresh shell's environment with the artifacts root."""
    return {**_shell_env(), "TC_ARTIFACTS_DIR": str(root)}


def _opslab(bin_dir: Path, cwd: Path, *args: str, timeout: float = 600) -> dict:
    proc = subprocess.run([str(bin_dir / "opslab"), *args, "--json"], cwd=cwd, env=_env(cwd / "artifacts"), capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (result, proc.stderr[-3000:])
    return result


def test_the_installed_wheel_runs_a_backtest_and_a_paper_run_outside_the_checkout(installed: Path, tmp_path: Path):
    for spec in ("demo.yaml", "paper-demo.yaml"):
        shutil.copy(REPO / "fixtures" / "specs" / spec, tmp_path / spec)
    version = subprocess.run([str(installed / "opslab"), "--version"], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    twin = subprocess.run([str(installed / "tc"), "--version"], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout == twin.stdout and version.stdout.strip(), (version, twin)
    where = subprocess.run([str(installed / "python"), "-c", "import opslab; print(opslab.__file__)"], cwd=tmp_path, env=_env(tmp_path),
                           capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), "the venv's own opslab, not the checkout's"

    _opslab(installed, tmp_path, "data", "prepare", "--spec", "demo.yaml")
    run = _opslab(installed, tmp_path, "run", "backtest", "--spec", "demo.yaml")
    assert run["data"]["counters"]["fills"] > 0
    assert (Path(run["data"]["run_dir"]) / "report.md").is_file()
    _opslab(installed, tmp_path, "data", "prepare", "--spec", "paper-demo.yaml")
    _opslab(installed, tmp_path, "run", "paper", "--spec", "paper-demo.yaml")
    life = json.loads((tmp_path / "artifacts" / "runs" / "paper-demo" / "paper" / "lifecycle.json").read_text())
    assert life["state"] == "stopped"
    _opslab(installed, tmp_path, "artifacts", "verify", "--all")


def test_the_installed_wheel_runs_a_node_drill_with_its_own_configs_and_runbooks(installed: Path, tmp_path: Path):
    prometheus, alertmanager = stack.binaries()
    if not (prometheus and alertmanager):
        pytest.skip("the node drill needs Debian's prometheus and prometheus-alertmanager binaries on PATH (apt-get install prometheus "
                    "prometheus-alertmanager; CI has them)")
    result = _opslab(installed, tmp_path, "drill", "run", "node_crash", timeout=900)
    assert result["data"]["result"]["verdict"] == "pass", result
    runbook = Path(result["details"][0].removeprefix("runbook: "))
    assert runbook.is_absolute() and runbook.is_file() and runbook.is_relative_to(installed.parent), result["details"]
    assert runbook.read_text() == (REPO / "docs" / "runbooks" / "node_crash.md").read_text()
