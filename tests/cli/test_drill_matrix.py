"""`tc drill matrix` as an operator calls it: the plan, and bad input refused in one line with nothing written.
(The matrix itself, every node drill on each engine, is tests/integration/test_drill_matrix.py.)"""

from __future__ import annotations

import json

import pytest

from opslab.drills import matrix
from opslab.drills.registry import DRILLS


def test_check_prints_the_plan_and_writes_nothing(lab):
    result = lab("drill", "matrix", "--check", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    node = [name for name, drill in DRILLS.items() if drill.kind == "node"]
    assert doc["status"] == "changed" and f"would run {len(node)} node drill(s)" in doc["summary"]
    for engine in matrix.environments():
        assert engine in doc["summary"]
    assert not lab.root.exists() or not any(lab.root.rglob("*"))


@pytest.mark.parametrize("argv, needle", [
    (["--engines", "9.9.9"], "no environment holds nautilus_trader 9.9.9"),
    (["--engines", "latest"], "not a release number"),
    (["--drill", "mismatch"], "not a node drill"),
    (["--drill", "nope"], "not a node drill"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(lab, argv, needle):
    result = lab("drill", "matrix", *argv)
    assert result.code == 2, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.err
    assert not lab.root.exists() or not any(lab.root.rglob("*"))


@pytest.mark.parametrize("kind", ["not empty", "a file", "a link"])
def test_keep_refuses_anything_but_a_new_or_empty_folder(lab, tmp_path, kind):
    keep = tmp_path / "keep"
    if kind == "not empty":
        keep.mkdir()
        (keep / "old.txt").write_text("x")
    elif kind == "a file":
        keep.write_text("x")
    else:
        (tmp_path / "elsewhere").mkdir()
        keep.symlink_to(tmp_path / "elsewhere")
    result = lab("drill", "matrix", "--keep", str(keep))
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert f"--keep: {keep}: expected a new or empty folder (not a link)" in result.err
    assert not lab.root.exists() or not any(lab.root.rglob("*"))
    assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())
