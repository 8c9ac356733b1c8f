"""Turns the artifacts root into Prometheus metric families.

FAMILIES declares every family (name, type, labels, help, source); SOURCES maps artifacts to tiny
extractor functions that yield samples for declared families. A new artifact needs one extractor
and its families here, never server code. Counter families for runs come from the properties of
schemas/metrics.schema.json, so a new counter appears without code.

Scrapes stay cheap as runs pile up: every write into a run folder ends with an atomic rename
(the manifest), which changes the folder's mtime; a run's samples are cached under that mtime and
re-read only when it changes. Root artifacts are cached by (mtime_ns, size). A corrupt or
half-written artifact increments tc_exporter_artifact_errors_total and never breaks the scrape.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from opslab.artifacts import GENERATION
from opslab.contracts import load_schema

Sample = tuple[str, tuple[str, ...], float]


@dataclass(frozen=True)
class Family:
    """One metric family: its type, label names, help text and source artifact."""

    name: str
    kind: str  # gauge | counter
    labels: tuple[str, ...]
    help: str
    source: str


def _counter_families() -> list[Family]:
    props = load_schema("metrics")["properties"]["counters"]["properties"]
    return [Family(f"tc_run_{name}", "counter", ("run_id",), props[name]["description"], "runs/<run_id>/metrics.json")
            for name in sorted(props)]


FAMILIES: list[Family] = [
    Family("tc_run_info", "gauge", ("run_id", "engine_kind", "scenario", "strategy"), "1 for every run; identity labels.", "runs/<run_id>/metadata.json"),
    Family("tc_run_status", "gauge", ("run_id", "status"), "1 for the run's current status (initialized, running, completed, failed, blocked, stopped).", "runs/<run_id>/metadata.json"),
    Family("tc_run_updated_timestamp_seconds", "gauge", ("run_id",), "When the run's metadata last changed (Unix seconds).", "runs/<run_id>/metadata.json"),
    Family("tc_run_dataset_last_bar_timestamp_seconds", "gauge", ("run_id",), "Close time of the run dataset's last bar (Unix seconds).", "runs/<run_id>/metadata.json"),
    Family("tc_run_balance", "gauge", ("run_id", "currency"), "Final venue balance (total) per currency.", "runs/<run_id>/metrics.json"),
    *_counter_families(),
    Family("tc_run_kill_switch_engaged_at_start", "gauge", ("run_id",), "1 when the kill switch was engaged the last time the run looked.", "runs/<run_id>/metadata.json"),
    Family("tc_paper_steps_done", "gauge", ("run_id", "state"), "Paper lifecycle steps done, labelled with the lifecycle state.", "runs/<run_id>/paper/lifecycle.json"),
    Family("tc_paper_recoveries", "gauge", ("run_id",), "Times an unfinished paper lifecycle was recovered after a crash.", "runs/<run_id>/paper/lifecycle.json"),
    Family("tc_reconciliation_checks", "gauge", ("run_id",), "Checks evaluated by the last reconciliation.", "runs/<run_id>/reconciliation.json"),
    Family("tc_reconciliation_mismatches", "gauge", ("run_id",), "Checks that did not match in the last reconciliation.", "runs/<run_id>/reconciliation.json"),
    Family("tc_connectivity_ready", "gauge", ("run_id",), "1 when every credential placeholder is set.", "runs/<run_id>/connectivity_readiness.json"),
    Family("tc_connectivity_missing_placeholders", "gauge", ("run_id",), "Credential placeholders unset or empty.", "runs/<run_id>/connectivity_readiness.json"),
    Family("tc_connectivity_probe_up", "gauge", ("run_id", "target"), "1 when the last recorded probe was up.", "runs/<run_id>/connectivity_probe.json"),
    Family("tc_connectivity_probe_latency_seconds", "gauge", ("run_id", "target"), "Latency of the last recorded up probe.", "runs/<run_id>/connectivity_probe.json"),
    Family("tc_connectivity_probe_http_status", "gauge", ("run_id", "target"), "HTTP status of the last recorded probe (0 when none).", "runs/<run_id>/connectivity_probe.json"),
    Family("tc_artifacts_verification_problems", "gauge", ("run_id",), "Problems `tc artifacts verify` finds in the run (0 when it verifies).", "runs/<run_id>/*"),
    Family("tc_dataset_rows", "gauge", ("dataset_id",), "Bars in a prepared dataset.", "datasets/<dataset_id>/manifest.json"),
    Family("tc_dataset_info", "gauge", ("dataset_id", "fingerprint"), "1 per dataset; its fingerprint as a label.", "datasets/<dataset_id>/manifest.json"),
    Family("tc_kill_switch_engaged", "gauge", (), "1 when the kill switch is engaged or its state is unreadable (fail closed), else 0.", "state/kill_switch.json"),
    Family("tc_kill_switch_state_valid", "gauge", (), "0 when the kill switch state file is unreadable or invalid.", "state/kill_switch.json"),
    Family("tc_kill_switch_events", "counter", (), "Engage and release events in the switch's history.", "state/kill_switch_events.jsonl"),
    Family("tc_drill_detected", "gauge", ("drill",), "1 when the drill's failure was detected (verdict pass).", "drills/<drill>/result.json"),
    Family("tc_drill_finished_timestamp_seconds", "gauge", ("drill",), "When the drill last finished (Unix seconds).", "drills/<drill>/result.json"),
    Family("tc_drills_passed", "gauge", (), "Drills that passed in the last `tc drill run --all`.", "drills/scorecard.json"),
    Family("tc_drills_run", "gauge", (), "Drills in the last `tc drill run --all`.", "drills/scorecard.json"),
    Family("tc_exporter_scrape_duration_seconds", "gauge", (), "How long this scrape took to collect.", "(exporter)"),
    Family("tc_exporter_artifact_errors", "counter", ("kind",), "Artifacts that could not be read or parsed, since the exporter started.", "(exporter)"),
    Family("tc_exporter_scrapes", "counter", (), "Scrapes served since the exporter started.", "(exporter)"),
]
BY_NAME = {f.name: f for f in FAMILIES}
COUNTERS = [name for name in load_schema("metrics")["properties"]["counters"]["properties"]]


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _load(path: Path) -> Any:
    with open(path, "rb") as fh:
        return json.load(fh)


def run_samples(folder: Path) -> Iterator[Sample]:
    """Every sample one run folder contributes (read only when the folder changed)."""
    from opslab.verify import verify_run

    rid = folder.name
    meta = _load(folder / "metadata.json")
    yield "tc_run_info", (rid, meta["engine_kind"], meta["scenario"]["name"], meta["strategy"]["name"]), 1
    yield "tc_run_status", (rid, meta["status"]), 1
    updated = _ts(meta.get("updated_at"))
    if updated is not None:
        yield "tc_run_updated_timestamp_seconds", (rid,), updated
    last_bar = _ts(meta["dataset"]["last_bar_close"])
    if last_bar is not None:
        yield "tc_run_dataset_last_bar_timestamp_seconds", (rid,), last_bar
    if "safety" in meta:
        yield "tc_run_kill_switch_engaged_at_start", (rid,), 1 if meta["safety"]["engaged"] else 0
    metrics_path = folder / "metrics.json"
    if metrics_path.exists():
        metrics = _load(metrics_path)
        for name, value in metrics["counters"].items():
            yield f"tc_run_{name}", (rid,), value
        for ccy, amount in metrics.get("balances", {}).items():
            yield "tc_run_balance", (rid, ccy), float(amount)
    for name, extractor in RUN_SOURCES.items():
        path = folder / name
        if path.exists():
            yield from extractor(rid, _load(path))
    yield "tc_artifacts_verification_problems", (rid,), len(verify_run(folder))


def _lifecycle(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_paper_steps_done", (rid, doc["state"]), doc["steps_done"]
    yield "tc_paper_recoveries", (rid,), doc["recoveries"]


def _reconciliation(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_reconciliation_checks", (rid,), doc["summary"]["checks"]
    yield "tc_reconciliation_mismatches", (rid,), doc["summary"]["mismatches"]


def _readiness(rid: str, doc: dict) -> Iterator[Sample]:
    yield "tc_connectivity_ready", (rid,), 1 if doc["ready"] else 0
    yield "tc_connectivity_missing_placeholders", (rid,), len(doc["missing"])


def _probe(rid: str, doc: dict) -> Iterator[Sample]:
    labels = (rid, doc["target"])
    yield "tc_connectivity_probe_up", labels, 1 if doc["outcome"] == "up" else 0
    yield "tc_connectivity_probe_http_status", labels, doc["http_status"] or 0
    if doc["latency_ms"] is not None:
        yield "tc_connectivity_probe_latency_seconds", labels, doc["latency_ms"] / 1000.0


RUN_SOURCES: dict[str, Callable[[str, dict], Iterable[Sample]]] = {
    "paper/lifecycle.json": _lifecycle,
    "reconciliation.json": _reconciliation,
    "connectivity_readiness.json": _readiness,
    "connectivity_probe.json": _probe,
}


def _dataset(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_dataset_rows", (doc["dataset_id"],), doc["rows"]
    yield "tc_dataset_info", (doc["dataset_id"], doc["fingerprint"]), 1


def _kill_switch(path: Path) -> Iterator[Sample]:
    from opslab.contracts import errors_for

    try:
        doc = _load(path)
        valid = not errors_for("kill_switch", doc, str(path))
    except (OSError, ValueError):
        valid = False
    engaged = (not valid) or doc["state"] == "engaged"
    yield "tc_kill_switch_engaged", (), 1 if engaged else 0
    yield "tc_kill_switch_state_valid", (), 1 if valid else 0


def _kill_switch_events(path: Path) -> Iterator[Sample]:
    with open(path, "rb") as fh:
        yield "tc_kill_switch_events", (), sum(1 for line in fh if line.endswith(b"\n"))


def _drill(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_drill_detected", (doc["drill"],), 1 if doc["detected"] else 0
    finished = _ts(doc["finished_at"])
    if finished is not None:
        yield "tc_drill_finished_timestamp_seconds", (doc["drill"],), finished


def _scorecard(path: Path) -> Iterator[Sample]:
    doc = _load(path)
    yield "tc_drills_passed", (), doc["passed"]
    yield "tc_drills_run", (), doc["total"]


# Root artifacts: (folder relative to the root, file name inside each entry or None for a direct file, extractor).
ROOT_SOURCES: list[tuple[str, str | None, Callable[[Path], Iterable[Sample]]]] = [
    ("datasets", "manifest.json", _dataset),
    ("state/kill_switch.json", None, _kill_switch),
    ("state/kill_switch_events.jsonl", None, _kill_switch_events),
    ("drills", "result.json", _drill),
    ("drills/scorecard.json", None, _scorecard),
]


class ArtifactCollector:
    """A prometheus_client custom collector over one artifacts root, with a per-artifact cache.

    refresh() stats what exists and re-reads only what changed; exposition() re-renders the
    artifact families only after a change, so a warm scrape costs one stat per run plus the few
    exporter families.
    """

    SWEEP_EVERY_S = 30.0  # full stat sweep at least this often, to catch changes made outside tc

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._generation: Any = None
        self._last_sweep = float("-inf")
        self._cache: dict[str, tuple[Any, list[Sample]]] = {}
        self._rendered: bytes | None = None
        self.errors: dict[str, int] = {}
        self.scrapes = 0

    def _update(self, key: str, sig: Any, kind: str, produce: Callable[[], Iterable[Sample]]) -> bool:
        hit = self._cache.get(key)
        if hit and hit[0] == sig:
            return False
        try:
            samples = list(produce())
        except Exception:  # corrupt, half-written or foreign files must never break a scrape
            self.errors[kind] = self.errors.get(kind, 0) + 1
            samples = []
        self._cache[key] = (sig, samples)
        return True

    def refresh(self) -> bool:
        """Bring the cache up to date with the files; True when anything changed.

        Every tc write appends a byte to <root>/.generation, so when that file did not change
        (and the last full sweep is recent) nothing did: no per-run stat at all.
        """
        try:
            st = (self.root / GENERATION).stat()
            generation: Any = (st.st_mtime_ns, st.st_size)
        except OSError:
            generation = None
        now = time.monotonic()
        if generation is not None and generation == self._generation and now - self._last_sweep < self.SWEEP_EVERY_S:
            return False
        self._generation, self._last_sweep = generation, now
        try:
            return self._refresh()
        except OSError:  # an unreadable root or folder (permissions): count it, serve what is cached
            self.errors["root"] = self.errors.get("root", 0) + 1
            return False

    def _refresh(self) -> bool:
        changed = False
        seen: set[str] = set()
        runs = self.root / "runs"
        if runs.is_dir():
            for entry in os.scandir(runs):
                if entry.is_dir():
                    seen.add(entry.path)
                    changed |= self._update(entry.path, entry.stat().st_mtime_ns, "run", lambda p=Path(entry.path): run_samples(p))
        for rel, inner, extractor in ROOT_SOURCES:
            base = self.root / rel
            if inner is None:
                paths = [base]
            else:
                paths = [Path(e.path) / inner for e in os.scandir(base) if e.is_dir()] if base.is_dir() else []
            for path in paths:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                seen.add(str(path))
                changed |= self._update(str(path), (st.st_mtime_ns, st.st_size), rel.split("/")[0], lambda p=path, x=extractor: x(p))
        for gone in set(self._cache) - seen:  # runs or files deleted since the last scrape
            del self._cache[gone]
            changed = True
        return changed

    def samples(self) -> list[Sample]:
        """All artifact samples (after a refresh)."""
        self.refresh()
        out = [sample for _, samples in self._cache.values() for sample in samples]
        if str(self.root / "state/kill_switch.json") not in self._cache:
            out += [("tc_kill_switch_engaged", (), 0), ("tc_kill_switch_state_valid", (), 1)]  # no state file: released
        return out

    def artifact_families(self) -> list[Any]:
        families: dict[str, Any] = {}
        for fam in FAMILIES:
            if fam.source == "(exporter)":
                continue
            cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
            families[fam.name] = cls(fam.name, fam.help, labels=list(fam.labels))
        for name, labels, value in self.samples():
            family = families.get(name)
            if family is not None:
                family.add_metric(list(labels), value)
        return list(families.values())

    def exporter_families(self, duration: float) -> list[Any]:
        errors = CounterMetricFamily("tc_exporter_artifact_errors", BY_NAME["tc_exporter_artifact_errors"].help, labels=["kind"])
        for kind in ("run", "datasets", "state", "drills", "root"):
            errors.add_metric([kind], self.errors.get(kind, 0))
        scrapes = CounterMetricFamily("tc_exporter_scrapes", BY_NAME["tc_exporter_scrapes"].help)
        scrapes.add_metric([], self.scrapes)
        took = GaugeMetricFamily("tc_exporter_scrape_duration_seconds", BY_NAME["tc_exporter_scrape_duration_seconds"].help)
        took.add_metric([], duration)
        return [took, errors, scrapes]

    def collect(self) -> Iterator[Any]:
        """prometheus_client's collector interface (used by `tc metrics dump` and tests)."""
        start = time.perf_counter()
        self.scrapes += 1
        yield from self.artifact_families()
        yield from self.exporter_families(time.perf_counter() - start)

    def exposition(self) -> list[bytes]:
        """One scrape in the text format, as chunks to send in order: the artifact families
        (re-rendered only after a change, else the cached bytes as they are, not copied) and the
        exporter's own families."""
        start = time.perf_counter()
        self.scrapes += 1
        return [self.rendered_artifacts(), _render(self.exporter_families(time.perf_counter() - start))]

    def rendered_artifacts(self) -> bytes:
        """The artifact families in the text format, re-rendered only after a change. Called once
        when the exporter starts, so the first scrape does not pay for reading every run."""
        if self.refresh() or self._rendered is None:
            self._rendered = _render(self.artifact_families())
        return self._rendered


class _Static:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def _render(families: list[Any]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(families))
    return generate_latest(registry)
