"""Write the scenario registry into schemas/runspec.schema.json (a unit test checks it is current).

The RunSpec schema is the single source of what a spec may name; the registry in
opslab/scenarios.py is the single source of what exists. This script makes the first follow
the second: /properties/scenario/properties/name gets the enum of names, and
/$defs/scenario_versions the versions of each, so validating a spec never imports the engine.

Usage: python scripts/gen_runspec_scenarios.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from opslab.scenarios import SCENARIOS  # noqa: E402 - registry only, no Nautilus import

SCHEMA = REPO / "schemas" / "runspec.schema.json"


def render() -> str:
    doc = json.loads(SCHEMA.read_text(encoding="utf-8"))
    names = sorted(SCENARIOS)
    doc["properties"]["scenario"]["properties"]["name"]["enum"] = names
    doc.setdefault("$defs", {})["scenario_versions"] = {
        "description": "Generated from the scenario registry by scripts/gen_runspec_scenarios.py: the versions of each scenario.",
        "default": {name: [SCENARIOS[name].version] for name in names},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SCHEMA.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA.relative_to(REPO)} is out of date with the scenario registry; run: python scripts/gen_runspec_scenarios.py")
            return 1
        return 0
    SCHEMA.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
