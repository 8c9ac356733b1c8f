"""Generate docs/reference/schemas.md from schemas/ (a unit test checks it is current).

Usage: python scripts/gen_schema_docs.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from opslab import contracts  # noqa: E402

OUT = REPO / "docs" / "reference" / "schemas.md"


def _type(node: dict) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "any")
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


def _rows(node: dict, prefix: str = "") -> list[str]:
    rows = []
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        flags = []
        if key in required:
            flags.append("required")
        if sub.get("x-volatile"):
            flags.append("volatile")
        desc = sub.get("description", "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {_type(sub)} | {', '.join(flags)} | {desc} |")
        if sub.get("type") == "object" and "properties" in sub:
            rows += _rows(sub, f"{name}.")
        if "if" in sub:  # a tagged union on `kind`: each branch's fields, marked with the kind they belong to
            for branch in (sub["then"], sub["else"]):
                kind = branch["properties"]["kind"]["const"]
                for row in _rows(branch, f"{name}."):
                    if not row.startswith(f"| `{name}.kind`"):
                        cells = row.split(" | ")
                        cells[2] = ", ".join(f for f in (cells[2], f"kind {kind}") if f)
                        rows.append(" | ".join(cells))
        items = sub.get("items")
        if isinstance(items, dict) and "properties" in items:
            rows += _rows(items, f"{name}[].")
    return rows


def render() -> str:
    """The whole page."""
    where = {}
    for art in contracts.ARTIFACTS.values():
        where.setdefault(art.schema, f"{'runs/<run_id>/' if art.scope == 'run' else ''}{art.path}")
    parts = [
        "# Schema reference",
        "",
        "Generated from `schemas/` and the artifact registry (`opslab/contracts.py`) by `scripts/gen_schema_docs.py`;",
        "do not edit by hand. Fields marked *volatile* may differ between two runs unless `SOURCE_DATE_EPOCH` is set.",
        "",
        "## Artifact registry",
        "",
        "Every file tc writes, declared once. *state* converges (a second call writes nothing), *observation* is",
        "recorded anew on every call (its history keeps the newest `TC_OBSERVATION_RETENTION`, default 100),",
        "*output* is what a run produced, *log* is append-only, *derived* is rendered from the others.",
        "",
        "| artifact | path | kind | schema | history | what |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for art in contracts.ARTIFACTS.values():
        path = f"runs/<run_id>/{art.path}" if art.scope == "run" else art.path
        history = "-" if not art.history else f"`{'runs/<run_id>/' if art.scope == 'run' else ''}{art.history}`"
        schema = f"`{art.schema}`" if art.schema else "-"
        parts.append(f"| `{art.name}` | `{path}` | {art.kind} | {schema} | {history} | {art.summary} |")
    parts.append("")
    for name in contracts.schema_names():
        schema = contracts.load_schema(name)
        parts += [f"## {schema.get('title', name)}", "", f"`schemas/{name}.schema.json`" + (f" — artifact `{where[name]}`" if name in where else ""), ""]
        parts += [schema.get("description", ""), "", "| field | type | flags | description |", "| --- | --- | --- | --- |"]
        parts += _rows(schema)
        parts.append("")
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python scripts/gen_schema_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
