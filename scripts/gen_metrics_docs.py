"""Generate docs/reference/metrics.md from opslab.metrics.catalog.FAMILIES (a test checks it is current).

Usage: python scripts/gen_metrics_docs.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from opslab.metrics.catalog import FAMILIES  # noqa: E402

OUT = REPO / "docs" / "reference" / "metrics.md"


def render() -> str:
    lines = ["# Metrics reference", "",
             "Generated from `opslab/metrics/catalog.py` by `scripts/gen_metrics_docs.py`; do not edit by hand.",
             "`tc metrics serve` (127.0.0.1:9108 by default, `/metrics` and `/healthz`) exports these families;",
             "`tc metrics dump` prints one scrape. Counter names carry `_total` in the exposition.", "",
             "| family | type | labels | meaning | source |", "| --- | --- | --- | --- | --- |"]
    for fam in FAMILIES:
        name = fam.name + ("_total" if fam.kind == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in fam.labels) or "-"
        lines.append(f"| `{name}` | {fam.kind} | {labels} | {fam.help.replace('|', '/')} | `{fam.source}` |")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python scripts/gen_metrics_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
