"""Without SOURCE_DATE_EPOCH, two runs differ only in fields the schemas mark x-volatile."""

from __future__ import annotations

import json
import time

from conftest import SPECS, run_tc
from opslab import contracts


def _mask(obj, schema_name):
    """Replace every volatile field (by schema) with a placeholder."""
    paths = contracts.volatile_fields(schema_name)

    def walk(node, prefix):
        if isinstance(node, dict):
            return {k: ("<volatile>" if f"{prefix}/{k}" in paths else walk(v, f"{prefix}/{k}")) for k, v in node.items()}
        return node

    return walk(obj, "")


def _masked_tree(root):
    out = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        name = rel.split("/", 2)[-1] if rel.startswith("runs/") else None
        found = contracts.classify(name, "run") if name else None
        schema = found[0].schema if found and not found[1] else None
        if schema and rel.endswith(".jsonl"):
            out[rel] = [_mask(json.loads(line), schema) for line in path.read_text().splitlines()]
        elif schema:
            out[rel] = _mask(json.loads(path.read_text()), schema)
        else:
            out[rel] = path.read_bytes()
    return out


def test_only_volatile_fields_differ(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_tc("run", "init", "--spec", str(SPECS / "demo.yaml"), artifacts=a).code == 0
    time.sleep(1.1)  # make sure the wall clock moved on
    assert run_tc("run", "init", "--spec", str(SPECS / "demo.yaml"), artifacts=b).code == 0
    meta_a = json.loads((a / "runs/demo/metadata.json").read_text())
    meta_b = json.loads((b / "runs/demo/metadata.json").read_text())
    assert meta_a["created_at"] != meta_b["created_at"], "the clock should have moved"
    assert _masked_tree(a) == _masked_tree(b)
