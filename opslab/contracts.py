"""Loads the JSON Schemas in schemas/ (the single source of field names) and validates against them.

Schemas are found next to the package in a checkout, or inside an installed wheel
(opslab/schemas). Compiled validators are cached per process.
"""

from __future__ import annotations

import fnmatch
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, NamedTuple

SCHEMA_VERSION = 1



class Artifact(NamedTuple):
    """One artifact: where it lives, what validates it, and what kind of thing it is.

    scope: run (PATH relative to runs/<run_id>/) or root (relative to the artifacts root; "*" is one
    path segment). kind: state (convergent), observation (recorded anew on every call; HISTORY is its
    bounded JSONL log), output (what a run produced), log (hash-chained, append-only), derived
    (rendered from other artifacts). schema None: not JSON (digests cover it).
    """

    name: str
    path: str
    schema: str | None
    scope: str
    kind: str
    summary: str
    history: str | None = None

    @property
    def jsonl(self) -> bool:
        return self.path.endswith(".jsonl")

    def at(self, base: Path, *fill: str, history: bool = False) -> Path:
        """Where the artifact (or its HISTORY log) lives under BASE (a run folder for scope run, the artifacts
        root for scope root), each `*` filled from FILL in order, also inside a segment (`reports/*.csv`):
        `artifact("venue_state").at(root, run_id)`. ValueError when FILL does not match the `*`s."""
        pattern = self.history if history else self.path
        if pattern is None or pattern.count("*") != len(fill) or any("/" in f or f in ("", ".", "..") for f in fill):
            raise ValueError(f"{self.name}: {pattern} has {pattern.count('*') if pattern else 0} `*`, given {fill!r}")
        pieces = pattern.split("*")
        return base / "".join(piece + value for piece, value in zip(pieces, (*fill, ""), strict=True))

    def in_folder(self, folder: Path, depth: int | None = None) -> Path:
        """The artifact's path inside FOLDER, the item folder its first `*` names (datasets/<id>/): FOLDER joined
        with the segments after that `*` (only the first DEPTH of them when given: a folder such as catalog/)."""
        parts = self.path.split("/")
        rest = parts[parts.index("*") + 1:]
        return folder.joinpath(*rest[:depth] if depth is not None else rest)

    def matches(self, rel: str) -> bool:
        """True when REL (relative to the artifact's scope) is this artifact's path (a `*` in a
        segment matches within that segment only)."""
        return _matches(_segments(self.path), rel.split("/"))


@lru_cache(maxsize=None)
def _segments(pattern: str) -> tuple[str, ...]:
    """PATTERN's segments, split once (the exporter classifies every file of every run on its first scrape: 15,000
    files at 1,000 runs)."""
    return tuple(pattern.split("/"))


def _matches(pattern: tuple[str, ...], parts: list[str]) -> bool:
    """A path's PARTS against a PATTERN's segments: a segment without `*` (no registered path has ? or [) is compared as it is."""
    return len(parts) == len(pattern) and all(q == p or ("*" in p and fnmatch.fnmatchcase(q, p)) for p, q in zip(pattern, parts, strict=True))


# THE registry: every artifact tc writes, declared once. Writers, the report, `tc artifacts verify`,
# the exporter and the docs' artifact table all read it; no other module spells a file name.
ARTIFACTS: dict[str, Artifact] = {a.name: a for a in [
    Artifact("runspec", "runspec.json", "runspec", "run", "state", "the normalized RunSpec the run was initialized with"),
    Artifact("metadata", "metadata.json", "metadata", "run", "state", "identity, status, dataset, versions, safety, latest observations"),
    Artifact("metrics", "metrics.json", "metrics", "run", "output", "counters and final balances"),
    Artifact("journal", "journal.jsonl", "journal_event", "run", "log", "every event of the run, hash-chained"),
    Artifact("orders", "orders.json", "orders", "run", "output", "orders as NautilusTrader reported them"),
    Artifact("fills", "fills.json", "fills", "run", "output", "fills as NautilusTrader reported them"),
    Artifact("positions", "positions.json", "positions", "run", "output", "positions (with snapshots) as NautilusTrader reported them"),
    Artifact("final_state", "final_state.json", "state_snapshot", "run", "output", "positions, open orders and balances at the end"),
    Artifact("engine_log", "engine/*", None, "run", "log",
             "NautilusTrader's own log files (spec engine.log; written by its logger, rotated, bounded by max_bytes)"),
    Artifact("paper_lifecycle", "paper/lifecycle.json", "paper_lifecycle", "run", "state", "the paper lifecycle and its transitions"),
    Artifact("reconciliation", "reconciliation.json", "reconciliation", "run", "observation", "the latest reconciliation",
             "observations/reconciliation.jsonl"),
    Artifact("connectivity_readiness", "connectivity_readiness.json", "connectivity_readiness", "run", "observation",
             "the latest readiness evaluation", "observations/connectivity_readiness.jsonl"),
    Artifact("connectivity_probe", "connectivity_probe.json", "connectivity_probe", "run", "observation", "the latest probe",
             "observations/connectivity_probe.jsonl"),
    Artifact("node_lifecycle", "node/lifecycle.json", "node_lifecycle", "run", "state", "the live node's lifecycle and its transitions"),
    Artifact("node_heartbeat", "node/heartbeat.json", "node_heartbeat", "run", "observation", "the live node's latest heartbeat",
             "node/heartbeats.jsonl"),
    Artifact("node_log", "node/node*.log", None, "run", "log", "the node's NautilusTrader log (bounded, rotated)"),
    Artifact("node_cache_db", "node/cache_db.json", "node_cache_db", "run", "state",
             "the node's cache database (spec engine.node.cache_database) and its key counts when the node started and stopped"),
    Artifact("node_cache_db_files", "node/cache_db/*", None, "run", "log",
             "the lab-managed redis-server's own files (its log; written by Redis)"),
    Artifact("node_cache_db_aof", "node/cache_db/appendonlydir/*", None, "run", "log",
             "the lab-managed redis-server's append-only file (NautilusTrader's cache database, fsynced on every write)"),
    Artifact("node_reports", "node/reports/*.csv", None, "run", "output", "NautilusTrader's own orders/fills/positions/account reports"),
    Artifact("venue_record", "venue_record.json", "state_snapshot", "run", "output", "the venue's own record of the node's account"),
    Artifact("report", "report.md", None, "run", "derived", "the run report, rendered from the artifacts"),
    Artifact("report_html", "report.html", None, "run", "derived", "the run report as a self-contained page with charts"),
    Artifact("manifest", "manifest.json", "manifest", "run", "derived", "sha256 of every other file of the run"),
    Artifact("dataset_manifest", "datasets/*/manifest.json", "dataset_manifest", "root", "state", "a dataset's fingerprint, rows and range"),
    Artifact("dataset_bars", "datasets/*/bars.csv", None, "root", "state",
             "a dataset's bars (CSV, close time first): the canonical bytes its fingerprint covers"),
    Artifact("dataset_instrument", "datasets/*/instrument.json", "instrument", "root", "state",
             "a dataset's instrument definition (NautilusTrader's CurrencyPair.to_dict form)"),
    Artifact("dataset_catalog", "datasets/*/catalog/data/*/*/*.parquet", None, "root", "state",
             "a dataset's instrument and bars as a NautilusTrader ParquetDataCatalog (what the engine reads; digests in the manifest)"),
    Artifact("venue_state", "venue/*/state.json", "venue_state", "root", "state",
             "the Binance-compatible venue's orders, trades, balances and replay cursor"),
    Artifact("dataset_quality", "datasets/*/quality.json", "dataset_quality", "root", "state",
             "a dataset's data quality checks (tc data import / tc data check)"),
    Artifact("kill_switch", "state/kill_switch.json", "kill_switch", "root", "state", "the kill switch, derived from its history"),
    Artifact("kill_switch_events", "state/kill_switch_events.jsonl", "kill_switch_event", "root", "log",
             "the kill switch's history, hash-chained (the truth)"),
    Artifact("node_registration", "state/nodes/*.json", "node_registration", "root", "state",
             "a running node's entry in the registry the kill switch wakes (pid, run id, wake socket); removed when it stops"),
    Artifact("node_wake_socket", "state/nodes/*.sock", None, "root", "state",
             "a running node's wake socket (Unix domain, owner only): `tc killswitch engage` halts the node through it"),
    Artifact("drill_result", "drills/*/result.json", "drill_result", "root", "observation", "the latest result of one drill",
             "drills/*/history.jsonl"),
    Artifact("drill_scorecard", "drills/scorecard.json", "drill_scorecard", "root", "observation", "the latest `tc drill run --all`"),
    Artifact("drill_scorecard_html", "drills/scorecard.html", None, "root", "derived", "the scorecard as a page, time to detect charted"),
    Artifact("drill_matrix", "drills/matrix.json", "drill_matrix", "root", "observation",
             "the latest `tc drill matrix`: every node drill on each engine profile, and what changed between them", "drills/matrix.jsonl"),
    Artifact("drill_matrix_html", "drills/matrix.html", None, "root", "derived", "the drill matrix as a page, changes marked"),
    Artifact("drills_manifest", "drills/manifest.json", "manifest", "root", "derived", "sha256 of every drill artifact"),
    Artifact("alert_notifications", "alerts/notifications.jsonl", "alert_notification", "root", "log",
             "Alertmanager notifications kept by `tc alerts receive`, hash-chained"),
    Artifact("alert_notifications_anchor", "alerts/notifications.anchor.json", "log_anchor", "root", "derived",
             "the alert history's line count and last hash, sealed: finds it deleted, truncated or re-chained"),
    Artifact("collection", "collections/*.json", "collection_manifest", "root", "derived",
             "`tc artifacts collect`: a run set's verified fan-in, each member's manifest digest and one digest over them"),
    Artifact("generation", ".generation", None, "root", "log", "the change feed: one line per path tc wrote"),
    Artifact("venue_stats", "venue/*/stats.json", "venue_stats", "root", "observation",
             "the Binance-compatible venue's request, WebSocket and market message counters and active faults"),
]}

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def artifact(name: str) -> Artifact:
    """The registered artifact NAME (a KeyError here is a bug in tc, not bad input)."""
    return ARTIFACTS[name]


def classify(rel: str, scope: str) -> tuple[Artifact, bool] | None:
    """The artifact a relative path is (and whether it is that artifact's history log), if any: the first in the
    registry's order whose path (or history log's path) matches."""
    parts = rel.split("/")
    for a, history, pattern in _by_scope(scope):
        if _matches(pattern, parts):
            return a, history
    return None


@lru_cache(maxsize=None)
def _by_scope(scope: str) -> tuple[tuple[Artifact, bool, tuple[str, ...]], ...]:
    """(artifact, is its history log, the path's segments) of every artifact of SCOPE, in the registry's order."""
    out = []
    for a in ARTIFACTS.values():
        if a.scope == scope:
            out.append((a, False, _segments(a.path)))
            if a.history:
                out.append((a, True, _segments(a.history)))
    return tuple(out)


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
    """A compiled, cached validator for schema NAME that explains every violation (jsonschema,
    imported on first use: only when something is invalid)."""
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(load_schema(name), format_checker=FormatChecker())


@lru_cache(maxsize=None)
def fast_validator(name: str) -> Any:
    """A compiled, cached yes/no validator for schema NAME (jsonschema-rs: the same schema file, about
    ten times faster to import and to run; it answers the common case, valid, on hot paths)."""
    import jsonschema_rs

    return jsonschema_rs.validator_for(load_schema(name))


def pointer(path: Any) -> str:
    """A JSON pointer for a jsonschema error path."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "/"


def _did_you_mean(word: Any, known: Any) -> str:
    """'; did you mean 'X'?' for the closest of KNOWN to WORD, or ''."""
    import difflib

    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(error: Any) -> str:
    if error.validator == "additionalProperties":
        text = error.message.replace("Additional properties are not allowed", "unknown field(s)")
        known = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in known] if isinstance(error.instance, dict) else []
        hints = [hint for key in unknown if (hint := _did_you_mean(key, known))]
        if len(unknown) == 1 and hints:
            return text + hints[0]
        return text + "".join(f"; {key!r}: {hint[2:]}" for key in unknown if (hint := _did_you_mean(key, known)))
    if error.validator == "required":
        return f"missing required field {error.message.split(' ')[0]}"
    if error.validator == "pattern":
        return f"{error.instance!r} does not match {error.validator_value!r}"
    if error.validator == "enum":
        return error.message + _did_you_mean(error.instance, error.validator_value)
    return error.message


def _tagged_union_noise(errors: list[Any]) -> set[int]:
    """Errors from the if/then/else branches of an object whose tag (an enum field such as dataset.kind) is
    itself invalid: the enum error names the allowed tags, the branch errors would contradict it."""
    noise = set()
    for tag in (e for e in errors if e.validator == "enum" and len(e.absolute_path) >= 1):
        schema_path = list(tag.absolute_schema_path)
        if schema_path[-3:-2] != ["properties"]:
            continue
        parent_schema, parent = schema_path[:-3], list(tag.absolute_path)[:-1]
        for other in errors:
            other_schema = list(other.absolute_schema_path)
            if (other_schema[:len(parent_schema)] == parent_schema and other_schema[len(parent_schema):][:1] in (["then"], ["else"])
                    and list(other.absolute_path)[:len(parent)] == parent):
                noise.add(id(other))
    return noise


def iter_errors(name: str, instance: Any) -> Iterator[tuple[str, str]]:
    """(JSON pointer, what was expected) for every violation, in a stable order."""
    if fast_validator(name).is_valid(instance):
        return
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: (list(map(str, e.path)), e.message))
    noise = _tagged_union_noise(errors)
    for error in errors:
        if id(error) not in noise:
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


def ensure_valid(name: str | None, instance: Any, source: str) -> None:
    """Refuse to write an invalid artifact: that is a bug in tc, never the user's input."""
    problems = errors_for(name, instance, source) if name else []
    if problems:
        raise AssertionError("refusing to write an invalid artifact: " + "; ".join(problems))
