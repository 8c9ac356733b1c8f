"""Loads the JSON Schemas in schemas/ (the single source of field names) and validates against them.

Schemas are found next to the package in a checkout, or inside an installed wheel
(opslab/schemas). Compiled validators are cached per process.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1

# Artifact path inside a run folder -> schema name. Every JSON artifact is listed here, and
# `tc artifacts verify` uses this map; .jsonl artifacts are validated line by line.
RUN_ARTIFACTS: dict[str, str] = {
    "runspec.json": "runspec",
    "metadata.json": "metadata",
    "metrics.json": "metrics",
    "manifest.json": "manifest",
    "journal.jsonl": "journal_event",
    "orders.json": "orders",
    "fills.json": "fills",
    "positions.json": "positions",
    "final_state.json": "state_snapshot",
    "paper/lifecycle.json": "paper_lifecycle",
    "reconciliation.json": "reconciliation",
    "connectivity_readiness.json": "connectivity_readiness",
    "connectivity_probe.json": "connectivity_probe",
    "node/lifecycle.json": "node_lifecycle",
    "node/heartbeat.json": "node_heartbeat",
    "node/heartbeats.jsonl": "node_heartbeat",
    "venue_record.json": "state_snapshot",
}

# Artifacts outside run folders, relative to the artifacts root. A "*" matches one path segment.
ROOT_ARTIFACTS: dict[str, str] = {
    "datasets/*/manifest.json": "dataset_manifest",
    "state/kill_switch.json": "kill_switch",
    "state/kill_switch_events.jsonl": "kill_switch_event",
    "drills/*/result.json": "drill_result",
    "drills/scorecard.json": "drill_scorecard",
    "venue/*/state.json": "venue_state",
}


def schema_dir() -> Path:
    """The folder holding the *.schema.json files."""
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "schemas"


def schema_names() -> list[str]:
    """Names of every schema shipped (file stem without .schema.json)."""
    return sorted(p.name[: -len(".schema.json")] for p in schema_dir().glob("*.schema.json"))


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema document for NAME."""
    path = schema_dir() / f"{name}.schema.json"
    with path.open("rb") as fh:
        return json.load(fh)


@lru_cache(maxsize=None)
def validator(name: str) -> Any:
    """A compiled, cached validator for schema NAME (jsonschema is imported on first use)."""
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(load_schema(name), format_checker=FormatChecker())


def pointer(path: Any) -> str:
    """A JSON pointer for a jsonschema error path."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "/"


def _describe(error: Any) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown field(s)")
    if error.validator == "required":
        return f"missing required field {error.message.split(' ')[0]}"
    if error.validator == "pattern":
        return f"{error.instance!r} does not match {error.validator_value!r}"
    return error.message


def iter_errors(name: str, instance: Any) -> Iterator[tuple[str, str]]:
    """(JSON pointer, what was expected) for every violation, in a stable order."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: (list(map(str, e.path)), e.message))
    for error in errors:
        yield pointer(error.absolute_path), _describe(error)


def errors_for(name: str, instance: Any, source: str) -> list[str]:
    """Human lines 'SOURCE: POINTER: message' for every violation."""
    return [f"{source}: {ptr}: {msg}" for ptr, msg in iter_errors(name, instance)]


def volatile_fields(name: str) -> set[str]:
    """Top-level and nested property paths the schema marks "x-volatile": true (may differ run to run)."""
    found: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, dict):
            return
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}/{key}"
            if isinstance(sub, dict) and sub.get("x-volatile"):
                found.add(path)
            walk(sub, path)

    walk(load_schema(name), "")
    return found
