"""docs/architecture.md's module table names exactly the package's modules: one row per module, none gone.

The rule, computed from the tree at test time: every `opslab/**/*.py` is listed, except `__main__.py`
and an `__init__.py` that holds no code of its own, i.e. whose statements are only its docstring,
imports and assignments to dunder names (`__all__`, `__version__`): a docstring-only package or one
that re-exports. An `__init__.py` that defines anything else (the drill registry) is listed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest


def _repo() -> Path:
    here = Path(__file__).resolve()
    return next(p for p in here.parents if (p / "pyproject.toml").is_file() and (p / "opslab").is_dir())


REPO = _repo()
DOC = REPO / "docs" / "architecture.md"
HEADER = re.compile(r"^\|\s*module\s*\|\s*concern\s*\|\s*$")
SEPARATOR = re.compile(r"^\|\s*:?-{3,}:?\s*\|\s*:?-{3,}:?\s*\|\s*$")
CELL = re.compile(r"^`(opslab/[A-Za-z0-9_/]+\.py)`$")


def _holds_code(path: Path) -> bool:
    """True when an __init__.py has a statement other than its docstring, imports or dunder assignments."""
    body = ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body
    for i, node in enumerate(body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id.startswith("__") and t.id.endswith("__") for t in targets):
                continue
        return True
    return False


def expected_modules(repo: Path) -> set[str]:
    """The module paths the table must list, from the tree under REPO/opslab."""
    found = set()
    for path in (repo / "opslab").rglob("*.py"):
        if path.name == "__main__.py" or (path.name == "__init__.py" and not _holds_code(path)):
            continue
        found.add(path.relative_to(repo).as_posix())
    return found


def table_modules(text: str) -> list[str]:
    """The first column of the one `| module | concern |` table, one backticked module path per row."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if HEADER.match(line)]
    assert len(starts) == 1, f"expected exactly one '| module | concern |' table, found {len(starts)}"
    start = starts[0]
    assert SEPARATOR.match(lines[start + 1]), "the module table's header is not followed by its separator row"
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 2 and cells[1], f"a row needs a module and its concern: {line!r}"
        match = CELL.match(cells[0])
        assert match, f"the first cell must be one module path like `opslab/runs/run.py`: {line!r}"
        rows.append(match.group(1))
    return rows


def mismatch(listed: list[str], expected: set[str]) -> list[str]:
    """What is wrong with the table: duplicates, modules missing from it, rows naming no module."""
    problems = [f"listed twice: {m}" for m in sorted({m for m in listed if listed.count(m) > 1})]
    problems += [f"missing from the table: {m}" for m in sorted(expected - set(listed))]
    problems += [f"no such module (or exempt __init__.py): {m}" for m in sorted(set(listed) - expected)]
    return problems


def test_the_module_table_names_exactly_the_modules_of_the_tree():
    problems = mismatch(table_modules(DOC.read_text(encoding="utf-8")), expected_modules(REPO))
    assert not problems, "docs/architecture.md's module table is out of date:\n  " + "\n  ".join(problems)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


TREE = {
    "opslab/__init__.py": '"""The package."""\n\n__version__ = "1"\n',
    "opslab/__main__.py": "from opslab.cli import main\n\nmain()\n",
    "opslab/fs.py": "X = 1\n",
    "opslab/runs/__init__.py": '"""Runs."""\n\nfrom opslab.runs.run import open\n\n__all__ = ["open"]\n',
    "opslab/runs/run.py": "def open(): ...\n",
    "opslab/drills/__init__.py": '"""Drills."""\n\nDRILLS = {}\n',
    "opslab/venue/__init__.py": '"""The venue."""\n',
}
TABLE = "| module | concern |\n| --- | --- |\n{rows}\n\nafter the table\n"


def _doc(*modules: str) -> str:
    return TABLE.format(rows="\n".join(f"| `{m}` | a concern |" for m in modules))


def test_the_rule_lists_code_and_exempts_docstring_only_and_re_exporting_packages(tmp_path):
    assert expected_modules(_tree(tmp_path, TREE)) == {"opslab/fs.py", "opslab/runs/run.py", "opslab/drills/__init__.py"}


def test_the_check_fails_when_a_module_is_added_or_removed(tmp_path):
    repo = _tree(tmp_path, TREE)
    doc = _doc("opslab/fs.py", "opslab/runs/run.py", "opslab/drills/__init__.py")
    assert mismatch(table_modules(doc), expected_modules(repo)) == []

    (repo / "opslab" / "venue" / "client.py").write_text("Y = 2\n", encoding="utf-8")
    assert mismatch(table_modules(doc), expected_modules(repo)) == ["missing from the table: opslab/venue/client.py"]

    (repo / "opslab" / "venue" / "client.py").unlink()
    (repo / "opslab" / "fs.py").unlink()
    assert mismatch(table_modules(doc), expected_modules(repo)) == ["no such module (or exempt __init__.py): opslab/fs.py"]


def test_duplicates_and_malformed_rows_are_refused(tmp_path):
    repo = _tree(tmp_path, TREE)
    doc = _doc("opslab/fs.py", "opslab/fs.py", "opslab/runs/run.py", "opslab/drills/__init__.py")
    assert mismatch(table_modules(doc), expected_modules(repo)) == ["listed twice: opslab/fs.py"]
    with pytest.raises(AssertionError, match="one module path"):
        table_modules(TABLE.format(rows="| `opslab/a.py`, `opslab/b.py` | two in one cell |"))
    with pytest.raises(AssertionError, match="exactly one"):
        table_modules(_doc("opslab/fs.py") + "\n" + _doc("opslab/fs.py"))
