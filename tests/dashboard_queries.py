"""The dashboard's PromQL as Grafana would send it: variables replaced by their 'All' / default values.

Shared by the tests that run every panel's query against a real Prometheus (native and in containers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent.parent / "grafana" / "dashboards" / "opslab.json"
# What Grafana substitutes when the run variable is "All" (its allValue) and for its built-in intervals.
SUBSTITUTIONS = {"run": ".*", "__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def interpolate(expr: str) -> str:
    """EXPR with $name / ${name} variables replaced; an unknown variable is an error."""
    def sub(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in SUBSTITUTIONS:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return SUBSTITUTIONS[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


def load() -> dict:
    """The dashboard JSON."""
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, interpolated expression) for every target of every non-row panel."""
    return [(p["title"], interpolate(t["expr"])) for p in load()["panels"] if p["type"] != "row" for t in p["targets"]]


def annotation_queries() -> list[tuple[str, str]]:
    """(annotation name, interpolated expression) for every Prometheus annotation."""
    return [(a["name"], interpolate(a["expr"])) for a in load()["annotations"]["list"] if "expr" in a]
