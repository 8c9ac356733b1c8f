"""The exporter's cache over one artifacts root, fed by the change feed (<root>/.generation).

Every tc write appends the path it wrote to <root>/.generation (fs.bump_generation). A refresh
reads only the lines added since the last one and re-checks only those runs and files; it sweeps
everything (one stat per run and root artifact) when the feed is new, started over or missing, and at
least every SWEEP_EVERY_S seconds, for changes made outside tc. A run's samples are cached under its
folder's mtime (every write into a run ends with an atomic rename of its manifest), root artifacts
under (mtime_ns, size). A corrupt or half-written artifact increments tc_exporter_artifact_errors_total
and never breaks the scrape.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

from opslab import contracts
from opslab.fs import GENERATION
from opslab.metrics.catalog import AGGREGATE_FAMILIES, ARTIFACT_FAMILIES, EXPORTER_FAMILIES, PER_RUN_DEFAULT, RUN_FAMILIES, counter_properties
from opslab.metrics.exposition import EOF_MARK, HEADERS, TEXT, lines_by_family
from opslab.metrics.extract import KILL_SWITCH_FILES, ROOT_SOURCES, Sample, kill_switch_samples, run_samples

KILL_SWITCH_KEY = "(kill switch)"
ACTIVE = ("running", "failed")  # runs shown per run whatever their age
ERROR_KINDS = ("run", "datasets", "state", "drills", "root", "venue")


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

    def __init__(self, root: Path, per_run: int = PER_RUN_DEFAULT, build: tuple[str, str, str] = ("", "", "")) -> None:
        self.root = Path(root)
        self.per_run = per_run
        self.build = build
        self.warming = False
        self.scrapes_waiting = 0  # scrapes waiting for the lock (the start-up read lets them in first)
        self._selected: set[str] = set()
        self._feed: tuple[int, int, bytes] | None = None  # (device, inode, first line) of .generation when last read
        self._feed_offset = 0
        self._last_sweep = float("-inf")
        self._cache: dict[str, tuple[Any, list[Sample]]] = {}
        self._lines: dict[str, dict[str, bytes]] = {name: {} for name in ARTIFACT_FAMILIES}  # family -> key -> lines
        self._blocks: dict[str, bytes] = {}  # family -> sample lines (no header)
        self._dirty: set[str] = set(ARTIFACT_FAMILIES)
        self._rendered: dict[str, bytes] = {}  # dialect -> the artifact families
        self._facts: dict[str, _Facts] = {}  # key -> what the aggregates need of it
        self._runs: dict[str, tuple[float, str]] = {}  # run key -> (last update, status)
        self._by_state: dict[tuple[str, str], int] = {}
        self._totals: dict[str, float] = {}
        self.errors: dict[str, int] = {}
        self.scrapes = 0

    # --- the cache --------------------------------------------------------------------------
    def _store(self, key: str, sig: Any, samples: list[Sample]) -> None:
        self._drop(key)
        self._cache[key] = (sig, samples)
        for name, text in lines_by_family(sample for sample in samples if sample[0] in self._lines).items():
            self._lines[name][key] = text
            self._dirty.add(name)
        facts = _facts(samples)
        self._facts[key] = facts
        self._tally(facts, +1)
        if facts.status:
            self._runs[key] = (facts.updated, facts.status)
        self._dirty.update(AGGREGATE_FAMILIES)

    def _drop(self, key: str) -> bool:
        """Forget KEY; True when it was cached."""
        old = self._cache.pop(key, None)
        for name in {sample[0] for sample in old[1]} if old else ():
            if self._lines.get(name, {}).pop(key, None) is not None:
                self._dirty.add(name)
        facts = self._facts.pop(key, None)
        if facts:
            self._tally(facts, -1)
            self._runs.pop(key, None)
            self._dirty.update(AGGREGATE_FAMILIES)
        return old is not None

    def _tally(self, facts: "_Facts", sign: int) -> None:
        """Add (or, with SIGN -1, remove) one artifact's facts to the running totals behind the aggregates."""
        if facts.status:
            state = (facts.status, facts.kind)
            self._by_state[state] = self._by_state.get(state, 0) + sign
            if not self._by_state[state]:
                del self._by_state[state]
        for name, value in facts.totals.items():
            self._totals[name] = self._totals.get(name, 0.0) + sign * value

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

    def _check_run(self, folder: str, st: os.stat_result | None = None, written: bool = False) -> bool:
        """Re-read one run folder if its modification time changed (every tc command's writes into a
        run end with an atomic rename of its manifest) or, WRITTEN, when the change feed named a file
        in it (a live node's heartbeats land in node/ between manifests); forget it when it is gone.
        ST: its stat, if known."""
        if st is None:
            try:
                st = os.stat(folder)
            except FileNotFoundError:
                pass
        if st is None or not stat.S_ISDIR(st.st_mode):
            return self._drop(folder)
        sig = (st.st_mtime_ns, self._feed_offset) if written else st.st_mtime_ns
        return self._update(folder, sig, "run", lambda: run_samples(Path(folder)))

    def _check_file(self, path: Path, kind: str, extractor: Callable[[Path], Iterable[Sample]]) -> bool:
        """Re-read one root artifact if its (mtime, size) changed; forget it when it is gone."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return self._drop(str(path))
        return self._update(str(path), (st.st_mtime_ns, st.st_size), kind, lambda: extractor(path))

    def _check_kill_switch(self) -> bool:
        """Re-read the kill switch when its state file or history changed (read together: the
        state is only trusted when it agrees with the history)."""
        sig = []
        for name in KILL_SWITCH_FILES:
            try:
                st = os.stat(self.root / contracts.artifact(name).path, follow_symlinks=False)
                sig.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                sig.append(None)
        return self._update(KILL_SWITCH_KEY, tuple(sig), "state", lambda: kill_switch_samples(self.root))

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
            # A rotated feed may get the old one's inode back; its first line (random after a rotation) tells them apart.
            ident = (st.st_dev, st.st_ino, fh.readline(4096))
            if ident != self._feed or st.st_size < self._feed_offset:  # a new feed, or it started over
                self._feed, self._feed_offset = ident, st.st_size
                return None
            if st.st_size == self._feed_offset:
                return []
            fh.seek(self._feed_offset)
            chunk = fh.read(st.st_size - self._feed_offset)
        complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
        self._feed_offset += complete
        return [line for line in chunk[:complete].decode("utf-8", "replace").splitlines() if not line.startswith("#")]

    def _source_of(self, rel: str) -> tuple[Path, str, Callable[[Path], Iterable[Sample]]] | None:
        """The root artifact a written path (relative to the root) is, if the exporter reads it."""
        found = contracts.classify(rel, "root")
        if found and not found[1] and found[0].name in ROOT_SOURCES:
            return self.root / rel, rel.split("/", 1)[0], ROOT_SOURCES[found[0].name]
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
        return self._check_kill_switch() or changed

    def _apply(self, lines: list[str]) -> bool:
        changed = False
        for rel in dict.fromkeys(lines):  # each path once
            parts = rel.split("/")
            if len(parts) >= 3 and parts[0] == "runs":
                changed |= self._check_run(os.path.join(self.root, "runs", parts[1]), written=True)
            elif contracts.classify(rel, "root") and contracts.classify(rel, "root")[0].name in KILL_SWITCH_FILES:
                continue  # refresh() re-checks the kill switch every time
            else:
                source = self._source_of(rel)
                if source:
                    changed |= self._check_file(*source)
        return changed

    def _sweep(self) -> bool:
        changed = False
        seen: set[str] = {KILL_SWITCH_KEY}
        runs = self.root / "runs"
        if runs.is_dir():
            for entry in os.scandir(runs):
                if entry.is_dir(follow_symlinks=False):
                    seen.add(entry.path)
                    changed |= self._check_run(entry.path, entry.stat(follow_symlinks=False))
        for name, extractor in ROOT_SOURCES.items():
            pattern = contracts.artifact(name).path
            for path in sorted(self.root.glob(pattern)):
                seen.add(str(path))
                changed |= self._check_file(path, pattern.split("/", 1)[0], extractor)
        for gone in set(self._cache) - seen:  # runs or files deleted since the last sweep
            self._drop(gone)
            changed = True
        return changed

    def samples(self) -> list[Sample]:
        """All artifact samples of every run and file (after a refresh; tests and tools)."""
        self.refresh()
        return [sample for _, samples in self._cache.values() for sample in samples]

    # --- bounded series -------------------------------------------------------------------------
    def _select(self) -> set[str]:
        """Runs whose per-run families are served: the newest `per_run` by last update, plus every
        running or failed one."""
        newest = sorted(self._runs, key=lambda key: (self._runs[key][0], key), reverse=True)[: self.per_run]
        return set(newest) | {key for key, (_, status) in self._runs.items() if status in ACTIVE}

    def _aggregates(self) -> list[Sample]:
        """Every run summarized from the running totals (bounded labels: statuses, engine kinds, outcomes)."""
        totals = self._totals
        return [*(("tc_runs", labels, count) for labels, count in sorted(self._by_state.items())),
                *((f"tc_runs_{name}", (), totals.get(f"tc_run_{name}", 0.0)) for name in _aggregated_counters()),
                ("tc_runs_verification_problems", (), totals.get("tc_artifacts_verification_problems", 0.0)),
                ("tc_runs_reconciliation_mismatches", (), totals.get("tc_reconciliation_mismatches", 0.0)),
                ("tc_runs_probes_down", (), totals.get("probes_down", 0.0)),
                ("tc_drills", ("pass",), totals.get("drills_pass", 0.0)), ("tc_drills", ("fail",), totals.get("drills_fail", 0.0))]

    # --- rendering --------------------------------------------------------------------------------
    def exporter_samples(self, duration: float) -> list[Sample]:
        """The exporter's own samples."""
        runs = len(self._runs)
        return [("tc_build_info", self.build, 1), ("tc_exporter_warming", (), 1 if self.warming else 0),
                ("tc_exporter_runs", ("per_run",), len(self._selected)), ("tc_exporter_runs", ("aggregate_only",), runs - len(self._selected)),
                ("tc_exporter_scrape_duration_seconds", (), duration),
                *(("tc_exporter_artifact_errors", (kind,), self.errors.get(kind, 0)) for kind in ERROR_KINDS),
                ("tc_exporter_scrapes", (), self.scrapes)]

    def exposition(self, dialect: str = TEXT, refresh: bool = True) -> list[bytes]:
        """One scrape, as chunks to send in order: the artifact families (re-rendered only after a
        change, else the cached bytes as they are) and the exporter's own families. REFRESH=False
        serves what is cached (while the start-up read is still running)."""
        start = time.perf_counter()
        self.scrapes += 1
        artifact_text = self.rendered_artifacts(dialect, refresh)
        own = lines_by_family(self.exporter_samples(time.perf_counter() - start))
        headers = HEADERS[dialect]
        return [artifact_text, b"".join(headers[name] + own.get(name, b"") for name in EXPORTER_FAMILIES) + EOF_MARK[dialect]]

    def rendered_artifacts(self, dialect: str = TEXT, refresh: bool = True) -> bytes:
        """The artifact families; only the families a change touched are joined again."""
        if refresh:
            self.refresh()
        if self._dirty:
            selected = self._select()
            if selected != self._selected:
                self._selected = selected
                self._dirty.update(RUN_FAMILIES)
            for name in self._dirty:
                if name in AGGREGATE_FAMILIES:
                    continue
                lines = self._lines[name]
                chosen = lines.values() if name not in RUN_FAMILIES else (text for key, text in lines.items() if key in selected)
                self._blocks[name] = b"".join(chosen)
            self._blocks.update(lines_by_family(self._aggregates()))
            self._dirty.clear()
            self._rendered.clear()
        if dialect not in self._rendered:
            headers = HEADERS[dialect]
            self._rendered[dialect] = b"".join(headers[name] + self._blocks.get(name, b"") for name in ARTIFACT_FAMILIES)
        return self._rendered[dialect]

    def warm(self, lock: Any) -> None:
        """The start-up read: every run, one at a time under LOCK (scrapes meanwhile serve what is read
        so far, with tc_exporter_warming 1), then everything else."""
        self.warming = True
        runs = self.root / "runs"
        try:
            entries = [e for e in os.scandir(runs) if e.is_dir(follow_symlinks=False)] if runs.is_dir() else []
        except OSError:
            entries = []
        for entry in entries:
            if self.scrapes_waiting:
                time.sleep(0.001)  # let a waiting scrape take the lock first (a Lock is not fair)
            with lock:
                try:
                    self._check_run(entry.path, entry.stat(follow_symlinks=False))
                except OSError:
                    self.errors["run"] = self.errors.get("run", 0) + 1
        with lock:
            self.refresh()
            self.warming = False


@dataclass(frozen=True)
class _Facts:
    """What the aggregates and the per-run selection need of one cached artifact's samples."""

    status: str
    kind: str
    updated: float
    totals: dict[str, float]


@lru_cache(maxsize=1)
def _aggregated_counters() -> tuple[str, ...]:
    return tuple(name for name, prop in counter_properties().items() if prop.get("x-metric-type", "counter") == "counter")


SUMMED = ("tc_artifacts_verification_problems", "tc_reconciliation_mismatches")


def _facts(samples: list[Sample]) -> _Facts:
    status = kind = ""
    updated = 0.0
    totals: dict[str, float] = {}
    counters = {f"tc_run_{name}" for name in _aggregated_counters()}
    for name, labels, value in samples:
        if name == "tc_run_status":
            status = labels[1]
        elif name == "tc_run_info":
            kind = labels[1]
        elif name == "tc_run_updated_timestamp_seconds":
            updated = value
        elif name in counters or name in SUMMED:
            totals[name] = totals.get(name, 0.0) + value
        elif name == "tc_connectivity_probe_up":
            totals["probes_down"] = totals.get("probes_down", 0.0) + 1 - value
        elif name == "tc_drill_detected":
            outcome = "drills_pass" if value else "drills_fail"
            totals[outcome] = totals.get(outcome, 0.0) + 1
    return _Facts(status, kind, updated, totals)
