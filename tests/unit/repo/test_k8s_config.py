"""scripts/gen_k8s_config.py (issue 30): the Kubernetes base reads generated, byte-identical copies of
prometheus/, alertmanager/ and grafana/ in deploy/k8s/base/config/, and `make check` runs the
generator with --check so a copy cannot go stale. Edits are made in a temporary copy of the
folders (--root), never in this checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "gen_k8s_config.py"
CONFIG = Path("deploy") / "k8s" / "base" / "config"


def gen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A checkout with just what the generator reads and writes."""
    for folder in ("prometheus", "alertmanager", "grafana", str(CONFIG)):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_checkout_copies_are_current():
    res = gen("--check")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


def test_the_copies_are_byte_identical_and_the_kustomization_reads_them():
    import yaml

    config = REPO / CONFIG
    copies = sorted(p.relative_to(config).as_posix() for p in config.rglob("*") if p.is_file() and p.name != "README.md")
    assert "prometheus/prometheus.yml" in copies and "grafana/dashboards/opslab.json" in copies
    for name in copies:
        assert (config / name).read_bytes() == (REPO / name).read_bytes(), name
    kustomization = yaml.safe_load((config.parent / "kustomization.yaml").read_text(encoding="utf-8"))
    read = sorted(f.removeprefix("config/") for gen in kustomization["configMapGenerator"] for f in gen["files"])
    assert read == copies


def test_an_edited_copy_fails_the_check_by_name_and_nothing_is_written(root):
    copy = root / CONFIG / "prometheus" / "rules" / "opslab.rules.yml"
    copy.write_text(copy.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    (root / CONFIG / "grafana" / "dashboards" / "opslab.json").unlink()
    before = snapshot(root)
    res = gen("--check", "--root", str(root))
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 2, lines
    assert any(ln.startswith(f"{CONFIG}/prometheus/rules/opslab.rules.yml: stale") for ln in lines), lines
    assert any(ln.startswith(f"{CONFIG}/grafana/dashboards/opslab.json: missing") for ln in lines), lines
    assert all(ln.endswith("run python scripts/gen_k8s_config.py") for ln in lines)
    assert snapshot(root) == before


def test_a_source_edit_is_copied_and_an_orphan_removed(root):
    source = root / "alertmanager" / "alertmanager.yml"
    source.write_bytes(source.read_bytes() + b"# a new receiver would go here\n")
    orphan = root / CONFIG / "prometheus" / "rules" / "gone.yml"
    orphan.write_text("groups: []\n", encoding="utf-8")
    res = gen("--check", "--root", str(root))
    assert res.returncode == 1
    assert f"{CONFIG}/alertmanager/alertmanager.yml: stale" in res.stderr and f"{CONFIG}/prometheus/rules/gone.yml: not generated" in res.stderr
    assert gen("--root", str(root)).returncode == 0
    assert (root / CONFIG / "alertmanager" / "alertmanager.yml").read_bytes() == source.read_bytes()
    assert not orphan.exists()
    res = gen("--check", "--root", str(root))
    assert (res.returncode, res.stderr) == (0, "")
