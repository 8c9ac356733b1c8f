"""Failure drills: a registry mapping each drill's name to its definition (one module per drill)."""

from __future__ import annotations

from opslab.drills.base import Drill

DRILLS: dict[str, Drill] = {}


def _register(*drills: Drill) -> None:
    for drill in drills:
        DRILLS[drill.name] = drill
