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
from pathlib import Path
from typing import Any, Callable, Iterable

from opslab import contracts
from opslab.fs import GENERATION
from opslab.metrics.catalog import ARTIFACT_FAMILIES, EXPORTER_FAMILIES
from opslab.metrics.exposition import HEADERS, lines_by_family
from opslab.metrics.extract import KILL_SWITCH_FILES, ROOT_SOURCES, Sample, kill_switch_samples, run_samples

KILL_SWITCH_KEY = "(kill switch)"


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
        for name, text in lines_by_family(sample for sample in samples if sample[0] in self._lines).items():
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
                changed |= self._check_run(os.path.join(self.root, "runs", parts[1]))
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
        """All artifact samples (after a refresh)."""
        self.refresh()
        return [sample for _, samples in self._cache.values() for sample in samples]

    def exporter_samples(self, duration: float) -> list[Sample]:
        """The exporter's own samples: this scrape's duration, artifact errors by kind, scrapes."""
        return [("tc_exporter_scrape_duration_seconds", (), duration),
                *(("tc_exporter_artifact_errors", (kind,), self.errors.get(kind, 0)) for kind in ("run", "datasets", "state", "drills", "root")),
                ("tc_exporter_scrapes", (), self.scrapes)]

    def exposition(self) -> list[bytes]:
        """One scrape in the text format, as chunks to send in order: the artifact families
        (re-rendered only after a change, else the cached bytes as they are, not copied) and the
        exporter's own families."""
        start = time.perf_counter()
        self.scrapes += 1
        artifact_text = self.rendered_artifacts()
        own = lines_by_family(self.exporter_samples(time.perf_counter() - start))
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
