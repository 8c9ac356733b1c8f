"""Turns the artifacts root into Prometheus metric families.

FAMILIES declares every family (name, type, labels, help, source); SOURCES maps artifacts to tiny
extractor functions that yield samples for declared families. A new artifact needs one extractor
and its families here, never server code. Counter families for runs come from the properties of
schemas/metrics.schema.json, so a new counter appears without code.

Scrapes stay cheap as runs pile up: tc names every path it writes in <root>/.generation, so a
scrape re-checks only those runs and files (see ArtifactCollector). A run's samples are cached
under its folder's mtime (every write into a run ends with an atomic rename of its manifest),
root artifacts under (mtime_ns, size). A corrupt or half-written artifact increments
tc_exporter_artifact_errors_total and never breaks the scrape.
"""

from __future__ import annotations

import calendar
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.utils import floatToGoString

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


ARTIFACT_FAMILIES = [f.name for f in FAMILIES if f.source != "(exporter)"]
EXPORTER_FAMILIES = [f.name for f in FAMILIES if f.source == "(exporter)"]
NO_KILL_SWITCH_STATE = "(no kill switch state)"  # cache key of the samples a missing state file means
NO_KILL_SWITCH_SAMPLES: list[Sample] = [("tc_kill_switch_engaged", (), 0), ("tc_kill_switch_state_valid", (), 1)]  # released


def _exposed_name(family: Family) -> str:
    return family.name + "_total" if family.kind == "counter" else family.name


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _sample_line(name: str, labels: tuple[str, ...], value: float) -> str:
    """One sample in the Prometheus text format, exactly as prometheus_client writes it (labels
    sorted by name, Go float formatting)."""
    family = BY_NAME[name]
    pairs = sorted(zip(family.labels, labels, strict=True))
    label_text = "{" + ",".join(f'{k}="{_escape_label_value(str(v))}"' for k, v in pairs) + "}" if pairs else ""
    return f"{_exposed_name(family)}{label_text} {floatToGoString(value)}\n"


def _lines_by_family(samples: Iterable[Sample]) -> dict[str, str]:
    """SAMPLES rendered as text lines, grouped by family."""
    grouped: dict[str, list[str]] = {}
    for name, labels, value in samples:
        grouped.setdefault(name, []).append(_sample_line(name, labels, value))
    return {name: "".join(lines) for name, lines in grouped.items()}


def _header(family: Family) -> bytes:
    doc = family.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {_exposed_name(family)} {doc}\n# TYPE {_exposed_name(family)} {family.kind}\n".encode()


HEADERS = {f.name: _header(f) for f in FAMILIES}


def _families(names: list[str], samples: Iterable[Sample]) -> list[Any]:
    """prometheus_client metric families NAMES (in that order) holding SAMPLES (for collect())."""
    families: dict[str, Any] = {}
    for name in names:
        fam = BY_NAME[name]
        cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
        families[name] = cls(name, fam.help, labels=list(fam.labels))
    for name, labels, value in samples:
        if name in families:
            families[name].add_metric(list(labels), value)
    return list(families.values())


class ArtifactCollector:
    """A prometheus_client custom collector over one artifacts root, with a per-artifact cache.

    Every tc write appends the path it wrote to <root>/.generation (artifacts.bump_generation). A
    refresh reads only the lines added since the last one and re-checks only those runs and files;
    it sweeps everything (one stat per run and root artifact) when the feed is new, started over or
    missing, and at least every SWEEP_EVERY_S seconds, for changes made outside tc. Each cached
    artifact keeps its samples already rendered, per family, so after a change only the families it
    touches are joined again: a scrape costs what changed, plus copying the text out.
    """

    SWEEP_EVERY_S = 30.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._feed: tuple[int, int] | None = None  # (device, inode) of .generation when last read
        self._feed_offset = 0
        self._last_sweep = float("-inf")
        self._cache: dict[str, tuple[Any, list[Sample]]] = {}
        self._lines: dict[str, dict[str, bytes]] = {name: {} for name in ARTIFACT_FAMILIES}  # family -> key -> lines
        self._blocks: dict[str, bytes] = {}
        self._dirty: set[str] = set(ARTIFACT_FAMILIES)
        self._rendered: bytes | None = None
        self.errors: dict[str, int] = {}
        self.scrapes = 0

    # --- the cache --------------------------------------------------------------------------
    def _store(self, key: str, sig: Any, samples: list[Sample]) -> None:
        self._drop(key)
        self._cache[key] = (sig, samples)
        for name, text in _lines_by_family(sample for sample in samples if sample[0] in self._lines).items():
            self._lines[name][key] = text.encode()
            self._dirty.add(name)

    def _drop(self, key: str) -> bool:
        """Forget KEY; True when it was cached."""
        old = self._cache.pop(key, None)
        for name in {sample[0] for sample in old[1]} if old else ():
            if self._lines.get(name, {}).pop(key, None) is not None:
                self._dirty.add(name)
        return old is not None

    def _update(self, key: str, sig: Any, kind: str, produce: Callable[[], Iterable[Sample]]) -> bool:
        hit = self._cache.get(key)
        if hit and hit[0] == sig:
            return False
        try:
            samples = list(produce())
        except Exception:  # corrupt, half-written or foreign files must never break a scrape
            self.errors[kind] = self.errors.get(kind, 0) + 1
            samples = []
        self._store(key, sig, samples)
        return True

    def _check_run(self, folder: str, st: os.stat_result | None = None) -> bool:
        """Re-read one run folder if its modification time changed (every tc write into a run ends
        with an atomic rename of its manifest); forget it when it is gone. ST: its stat, if known."""
        if st is None:
            try:
                st = os.stat(folder)
            except FileNotFoundError:
                pass
        if st is None or not stat.S_ISDIR(st.st_mode):
            return self._drop(folder)
        return self._update(folder, st.st_mtime_ns, "run", lambda: run_samples(Path(folder)))

    def _check_file(self, path: Path, kind: str, extractor: Callable[[Path], Iterable[Sample]]) -> bool:
        """Re-read one root artifact if its (mtime, size) changed; forget it when it is gone."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return self._drop(str(path))
        return self._update(str(path), (st.st_mtime_ns, st.st_size), kind, lambda: extractor(path))

    def _settle_kill_switch_default(self) -> None:
        if str(self.root / "state/kill_switch.json") in self._cache:
            self._drop(NO_KILL_SWITCH_STATE)
        elif NO_KILL_SWITCH_STATE not in self._cache:
            self._store(NO_KILL_SWITCH_STATE, None, NO_KILL_SWITCH_SAMPLES)

    # --- finding what changed ---------------------------------------------------------------
    def _read_feed(self) -> list[str] | None:
        """Paths written since the last read, or None when the feed cannot say (a full sweep is due)."""
        try:
            fh = open(self.root / GENERATION, "rb")
        except OSError:
            self._feed = None
            return None
        with fh:
            st = os.fstat(fh.fileno())
            ident = (st.st_dev, st.st_ino)
            if ident != self._feed or st.st_size < self._feed_offset:  # a new feed, or it started over
                self._feed, self._feed_offset = ident, st.st_size
                return None
            if st.st_size == self._feed_offset:
                return []
            fh.seek(self._feed_offset)
            chunk = fh.read(st.st_size - self._feed_offset)
        complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
        self._feed_offset += complete
        return chunk[:complete].decode("utf-8", "replace").splitlines()

    def _source_of(self, rel: str) -> tuple[Path, str, Callable[[Path], Iterable[Sample]]] | None:
        """The root artifact a written path (relative to the root) is, if the exporter reads it."""
        parts = rel.split("/")
        for base, inner, extractor in ROOT_SOURCES:
            base_parts = base.split("/")
            if inner is None and parts == base_parts:
                return self.root / rel, base_parts[0], extractor
            if inner is not None and len(parts) == len(base_parts) + 2 and parts[:-2] == base_parts and parts[-1] == inner:
                return self.root / rel, base_parts[0], extractor
        return None

    def refresh(self) -> bool:
        """Bring the cache up to date with the files; True when anything changed."""
        lines = self._read_feed()
        now = time.monotonic()
        try:
            if lines is None or now - self._last_sweep >= self.SWEEP_EVERY_S:
                self._last_sweep = now
                changed = self._sweep()
            else:
                changed = self._apply(lines)
        except OSError:  # an unreadable root or folder (permissions): count it, serve what is cached
            self.errors["root"] = self.errors.get("root", 0) + 1
            return False
        self._settle_kill_switch_default()
        return changed

    def _apply(self, lines: list[str]) -> bool:
        changed = False
        for rel in dict.fromkeys(lines):  # each path once
            parts = rel.split("/")
            if len(parts) >= 3 and parts[0] == "runs":
                changed |= self._check_run(os.path.join(self.root, "runs", parts[1]))
            else:
                source = self._source_of(rel)
                if source:
                    changed |= self._check_file(*source)
        return changed

    def _sweep(self) -> bool:
        changed = False
        seen: set[str] = {NO_KILL_SWITCH_STATE}
        runs = self.root / "runs"
        if runs.is_dir():
            for entry in os.scandir(runs):
                if entry.is_dir():
                    seen.add(entry.path)
                    changed |= self._check_run(entry.path, entry.stat())
        for rel, inner, extractor in ROOT_SOURCES:
            base = self.root / rel
            if inner is None:
                paths = [base]
            else:
                paths = [base / e.name / inner for e in os.scandir(base) if e.is_dir()] if base.is_dir() else []
            for path in paths:
                seen.add(str(path))
                changed |= self._check_file(path, rel.split("/")[0], extractor)
        for gone in set(self._cache) - seen:  # runs or files deleted since the last sweep
            self._drop(gone)
            changed = True
        return changed

    def samples(self) -> list[Sample]:
        """All artifact samples (after a refresh)."""
        self.refresh()
        return [sample for _, samples in self._cache.values() for sample in samples]

    def exporter_samples(self, duration: float) -> list[Sample]:
        """The exporter's own samples: this scrape's duration, artifact errors by kind, scrapes."""
        return [("tc_exporter_scrape_duration_seconds", (), duration),
                *(("tc_exporter_artifact_errors", (kind,), self.errors.get(kind, 0)) for kind in ("run", "datasets", "state", "drills", "root")),
                ("tc_exporter_scrapes", (), self.scrapes)]

    def collect(self) -> Iterator[Any]:
        """prometheus_client's collector interface (used by `tc metrics dump` and tests)."""
        start = time.perf_counter()
        self.scrapes += 1
        yield from _families(ARTIFACT_FAMILIES, self.samples())
        yield from _families(EXPORTER_FAMILIES, self.exporter_samples(time.perf_counter() - start))

    def exposition(self) -> list[bytes]:
        """One scrape in the text format, as chunks to send in order: the artifact families
        (re-rendered only after a change, else the cached bytes as they are, not copied) and the
        exporter's own families."""
        start = time.perf_counter()
        self.scrapes += 1
        artifact_text = self.rendered_artifacts()
        own = _lines_by_family(self.exporter_samples(time.perf_counter() - start))
        return [artifact_text, b"".join(HEADERS[name] + own.get(name, "").encode() for name in EXPORTER_FAMILIES)]

    def rendered_artifacts(self) -> bytes:
        """The artifact families in the text format; only the families a change touched are joined
        again. Called once when the exporter starts, so the first scrape does not read every run."""
        self.refresh()
        if self._dirty or self._rendered is None:
            for name in self._dirty:
                self._blocks[name] = HEADERS[name] + b"".join(self._lines[name].values())
            self._dirty.clear()
            self._rendered = b"".join(self._blocks[name] for name in ARTIFACT_FAMILIES)
        return self._rendered
