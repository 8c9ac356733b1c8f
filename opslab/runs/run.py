"""The run object: the one place that owns a run folder's protocol.

    dataset = runs.dataset_for(spec)                 # the operation resolves the dataset once
    with runs.open(spec, dataset=dataset) as run:   # root checked, lock taken once, folder initialized once,
        run.event("backtest_started", {})          # the dataset linked once (observations pass none)
        run.meta(status="running"); run.flush()
        run.write("orders", doc)           # artifact names come from the registry (contracts.ARTIFACTS)
        run.observe("connectivity_probe", doc, event=..., summary=...)
    # on exit, also on failure: metadata.json written if it changed, then report.md and manifest.json once;
    # an error escaping a run that had started work (it set a status) marks it failed first (journal run_failed)

metadata.json is written at most twice per command (flush() at the start of long work, and on exit);
no module outside this one appends to a run's journal or patches its metadata. list/show live here too.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any, Iterator

from opslab import __version__, clock, contracts, digests, fs, journal, safety
from opslab.report import html, markdown
from opslab.contracts import RUN_ID_RE, SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result, merge_status
from opslab.spec import RunSpec, config_hash, engine_config_hash

RETENTION_ENV = "TC_OBSERVATION_RETENTION"
DEFAULT_RETENTION = 100


def check_run_id(run_id: str) -> str:
    """Return RUN_ID if it matches the strict pattern, else InputError (it can never leave the root)."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise InputError(f"run_id {run_id!r}: expected letters, digits, '_' or '-', starting with a letter or digit, at most 64 characters")
    return run_id


def runs_dir() -> Path:
    """artifacts/runs."""
    return fs.root() / "runs"


def run_dir(run_id: str) -> Path:
    """The folder of one run (the id is validated first)."""
    return runs_dir() / check_run_id(run_id)


def path_of(folder: Path, name: str) -> Path:
    """Where the registered run artifact NAME lives in a run folder."""
    return folder / contracts.artifact(name).path


def read_artifact(folder: Path, name: str) -> Any:
    """A run artifact read outside an open run (None when absent)."""
    path = path_of(folder, name)
    return fs.read_json(path) if fs.exists(path) else None


def versions() -> dict[str, str]:
    """Versions of the software that produced a run (no Nautilus import)."""
    import importlib.metadata  # here, not at module level: `tc spec validate` starts without it

    try:
        nautilus = importlib.metadata.version("nautilus_trader")
    except importlib.metadata.PackageNotFoundError:
        nautilus = "not installed"
    return {"opslab": __version__, "nautilus_trader": nautilus, "python": platform.python_version()}


def retention() -> int:
    """How many observations an observation's history keeps ($TC_OBSERVATION_RETENTION, default 100)."""
    text = os.environ.get(RETENTION_ENV) or str(DEFAULT_RETENTION)
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise InputError(f"{RETENTION_ENV}: expected an integer 1-100000, got {text!r}")
    return int(text)


def existing_hash(folder: Path) -> str | None:
    """Config hash of the spec a run folder was initialized with, or None when it has none."""
    path = path_of(folder, "runspec")
    if not fs.exists(path):
        return None
    return config_hash(fs.read_json(path))


def refuse_other_spec(spec: RunSpec, folder: Path) -> None:
    """InputError when the run exists with a different spec (a run id names one spec for ever)."""
    found = existing_hash(folder)
    if found is not None and found != spec.config_hash:
        raise InputError(f"{spec.path}: /run_id: run {spec.run_id!r} already exists with a different spec "
                         f"({found[:19]}… vs {spec.config_hash[:19]}…); use a new run_id")


def refuse_other_engine(spec: RunSpec, folder: Path) -> None:
    """InputError when the run was made on another NautilusTrader release: a run id names one spec on one
    engine, so an upgraded environment never adds its results to a run an earlier release made."""
    path = path_of(folder, "metadata")
    if not fs.exists(path):
        return
    ran = (fs.read_json(path).get("versions") or {}).get("nautilus_trader")
    here = versions()["nautilus_trader"]
    if ran and ran != here:
        raise InputError(f"{spec.path}: /run_id: run {spec.run_id!r} ran on another engine (nautilus_trader {ran}; this "
                         f"environment has {here}); use a new run_id, or the engine profile it ran on (make setup ENGINE={ran})")


def dataset_block(manifest: dict[str, Any]) -> dict[str, Any]:
    """metadata.dataset: the dataset a run is linked to."""
    return {k: manifest[k] for k in ("dataset_id", "fingerprint", "rows", "first_bar_close", "last_bar_close")}


class Run:
    """An open run: its folder, spec, metadata (in memory until flushed) and the changes made."""

    def __init__(self, spec: RunSpec, folder: Path) -> None:
        self.spec, self.folder, self.run_id = spec, folder, spec.run_id
        self.dataset: dict[str, Any] | None = None
        self.statuses: list[str] = []
        self._meta: dict[str, Any] = {}
        self._meta_on_disk: dict[str, Any] | None = None
        self._status_set = False  # the command moved the run (running, completed, ...): an error escaping it fails the run

    # --- artifacts -----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return path_of(self.folder, name)

    def exists(self, name: str) -> bool:
        return fs.exists(self.path(name))

    def read(self, name: str) -> Any:
        """A run artifact, parsed (None when absent)."""
        return fs.read_json(self.path(name)) if self.exists(name) else None

    def write(self, name: str, doc: Any, validate: bool = True) -> bool:
        """Validate DOC against the artifact's schema and write it atomically; True when it changed."""
        art = contracts.artifact(name)
        if validate:
            contracts.ensure_valid(art.schema, doc, str(self.path(name)))
        changed = fs.write_json(self.path(name), doc)
        self.statuses.append("changed" if changed else "ok")
        return changed

    # --- journal ---------------------------------------------------------------------------------
    def event(self, name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        self.statuses.append("changed")
        return journal.append(self.path("journal"), self.run_id, name, data)

    def has_event(self, name: str, **match: Any) -> bool:
        return journal.has_event(self.path("journal"), name, **match)

    def events(self) -> list[dict[str, Any]]:
        return journal.read(self.path("journal"))

    # --- metadata ----------------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        return self._meta

    def meta(self, **fields: Any) -> None:
        """Set top-level metadata FIELDS (in memory; written by flush() or on exit)."""
        self._status_set = self._status_set or "status" in fields
        self._meta.update(fields)

    def flush(self) -> None:
        """Write metadata.json now if it changed (call once before long work, so a crash shows `running`)."""
        body = {k: v for k, v in self._meta.items() if k != "updated_at"}
        if self._meta_on_disk is not None and body == {k: v for k, v in self._meta_on_disk.items() if k != "updated_at"}:
            return
        self._meta["updated_at"] = clock.now_iso()
        self.write("metadata", self._meta)
        self._meta_on_disk = dict(self._meta)

    def record_safety(self) -> dict[str, Any]:
        """The kill switch as seen now: into metadata.safety and the journal (kill_switch_checked)."""
        seen = safety.record()
        self.meta(safety=seen)
        self.event("kill_switch_checked", {"kill_switch": seen["kill_switch"], "engaged": seen["engaged"]})
        return seen

    # --- observations --------------------------------------------------------------------------------
    def observe(self, name: str, doc: dict[str, Any], event: str, event_data: dict[str, Any], summary: dict[str, Any]) -> None:
        """Record a new observation: the latest file, one more line of its bounded history, a journal
        event and its summary in metadata. Never deduplicated into an older one."""
        self.write(name, doc)
        append_history(self.folder / contracts.artifact(name).history, doc)
        self.event(event, event_data)
        self.meta(**{name: summary})

    # --- protocol ----------------------------------------------------------------------------------
    def _start(self, prepared: Result | None) -> None:
        if self.exists("metadata"):
            self._meta = fs.read_json(self.path("metadata"))
            self._meta_on_disk = dict(self._meta)
        else:
            now, made_by = clock.now_iso(), versions()
            self._meta = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "config_hash": self.spec.config_hash,
                          "engine_config_hash": engine_config_hash(self.spec.config_hash, made_by["nautilus_trader"]),
                          "scenario": dict(self.spec.data["scenario"]), "strategy": dict(self.spec.data["strategy"]),
                          "engine_kind": self.spec.data["engine"]["kind"], "versions": made_by, "status": "initialized",
                          "safety": safety.record(), "created_at": now, "updated_at": now}
        self.write("runspec", self.spec.data)
        if not self.has_event("run_initialized"):
            self.event("run_initialized", {"config_hash": self.spec.config_hash, "spec_file": self.spec.path.name})
        if prepared is not None:
            self.link_dataset(prepared)
        if not self.exists("metrics"):
            counters = {"dataset_rows": self.dataset["rows"]} if self.dataset else {}
            self.write("metrics", {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "counters": counters})

    def link_dataset(self, prepared: Result) -> dict[str, Any]:
        """Link the prepared (and checked intact) dataset to the run."""
        self.statuses.append(prepared.status)
        manifest = prepared.data["manifest"]
        if not self.has_event("dataset_linked", fingerprint=manifest["fingerprint"]):
            self.event("dataset_linked", {"dataset_id": manifest["dataset_id"], "fingerprint": manifest["fingerprint"], "rows": manifest["rows"]})
        self.meta(dataset=dataset_block(manifest))
        self.dataset = manifest
        return manifest

    def fail(self, error: BaseException) -> None:
        """Mark the run failed for ERROR (journal run_failed), unless its command already did (an observation that
        fails leaves the run it observed as it was)."""
        if self._status_set and self._meta.get("status") != "failed":
            self.meta(status="failed")
            self.event("run_failed", {"error": f"{type(error).__name__}: {error}"[:500]})

    def _close(self, error: BaseException | None = None) -> None:
        """Metadata, reports and manifest brought up to date. A report that cannot be rendered fails the run (it is
        never left `completed` without one) and is raised, but only after the manifest is written."""
        if error is not None:
            self.fail(error)
        self.flush()
        broken: Exception | None = None
        try:
            changed = write_reports(self.folder)
        except Exception as exc:  # raised below, once the run is sealed
            broken, changed = exc, True
            if error is None:
                self.fail(exc)
                self.flush()
        changed |= digests.write_manifest(self.path("manifest"), self.run_id, self.folder, run_files(self.folder))
        self.statuses.append("changed" if changed else "ok")
        if broken is not None and error is None:
            raise broken

    @property
    def status(self) -> str:
        """changed when anything was written, else ok."""
        return merge_status(*self.statuses)


@contextlib.contextmanager
def open(spec: RunSpec, dataset: Result | None = None) -> Iterator[Run]:
    """Open the run of SPEC: check the root, refuse another spec, take the lock once, initialize once.

    DATASET is the spec's dataset as the operation resolved it (datasets.resolve.converge_for_spec, before
    the run folder is touched: a corrupt dataset is exit 2 with nothing of the run written); None for
    observations (probe, readiness, reconcile). On exit, also on failure, metadata, report.md and
    manifest.json are brought up to date once. An exception escaping a run whose command had set its status marks
    it failed first (Run.fail), so a crash mid-run leaves a sealed, verifiable run that says `failed`, never
    `completed` or `running`; the exception still propagates (exit 1 for an unexpected one).
    """
    fs.root_for_write()
    folder = run_dir(spec.run_id)
    refuse_other_spec(spec, folder)
    with fs.locked(folder, f"run {spec.run_id}"):
        refuse_other_spec(spec, folder)  # again under the lock
        if dataset is not None:  # the run commands; an observation (probe, readiness, reconcile) runs no engine
            refuse_other_engine(spec, folder)
        run = Run(spec, folder)
        run._start(dataset)
        try:
            yield run
        except BaseException as exc:
            run._close(exc)
            raise
        run._close()


def write_reports(folder: Path) -> bool:
    """report.md and report.html, rendered from the run's artifacts only; True when either changed."""
    changed = fs.write_atomic(path_of(folder, "report"), markdown.render(folder).encode("utf-8"))
    return fs.write_atomic(path_of(folder, "report_html"), html.render(folder).encode("utf-8")) or changed


def append_history(path: Path, doc: dict[str, Any]) -> None:
    """One more line in an observation's history, keeping the newest `retention()` lines."""
    fs.append_line(path, fs.canonical_json(doc) + b"\n")
    keep = retention()
    raw = fs.read_bytes(path)
    lines = raw.splitlines(keepends=True)
    if len(lines) > keep:
        fs.truncate_log(path, lines[-keep:])
    else:
        fs.bump_generation(path)


def run_files(folder: Path) -> list[str]:
    """Every file of a run folder the manifest covers (all but the manifest itself and temp files)."""
    manifest = contracts.artifact("manifest").path
    return sorted(p for p, kind in fs.walk(folder) if kind == "file" and p != manifest and not p.rsplit("/", 1)[-1].startswith("."))


# --- the run commands --------------------------------------------------------------------------

def load_metadata(run_id: str) -> tuple[Path, dict[str, Any]]:
    """A run's folder and metadata; InputError when there is no such run."""
    fs.root_for_read()
    folder = run_dir(run_id)
    path = path_of(folder, "metadata")
    if not fs.exists(path):
        raise InputError(f"run {run_id!r}: not found under {runs_dir()}; see `tc run list`")
    doc = fs.read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not a metadata object; run `tc artifacts verify {run_id}`")
    return folder, doc


def run_ids() -> list[str]:
    """Run folders under the artifacts root (links and odd names are left to verify), sorted."""
    return [name for name, kind in fs.entries(runs_dir()) if kind == "dir" and RUN_ID_RE.fullmatch(name)]


def list_runs() -> Result:
    """`tc run list`."""
    fs.root_for_read()
    rows = []
    for run_id in run_ids():
        try:
            _, meta = load_metadata(run_id)
            rows.append({"run_id": run_id, "status": meta["status"], "engine_kind": meta["engine_kind"],
                         "scenario": meta["scenario"]["name"], "created_at": meta["created_at"]})
        except (InputError, KeyError, TypeError):
            rows.append({"run_id": run_id, "status": "unreadable", "engine_kind": "", "scenario": "", "created_at": ""})
    table = [f"{r['run_id']}  {r['status']}  {r['engine_kind']}  {r['scenario']}  {r['created_at']}" for r in rows]
    return Result("ok", f"{len(rows)} run(s) under {runs_dir()}", data={"runs": rows}, details=table)


def show(run_id: str) -> Result:
    """`tc run show RUN_ID`."""
    folder, meta = load_metadata(run_id)
    path = path_of(folder, "journal")
    events = journal.read(path)
    last = events[-1].get("event") if events else None
    label = f"runs/{run_id}/{path.name}"
    damage = journal.verify(path, contracts.artifact("journal").schema, label) if fs.exists(path) else [f"{label}: missing"]
    damage += [f"{label}:{n}: run_id {e.get('run_id')!r}, expected {run_id!r} (a foreign line)"
               for n, e in enumerate(events, start=1) if e.get("run_id") != run_id]
    found = {"metadata": meta, "journal_events": len(events), "last_event": last, "files": run_files(folder), "journal_problems": damage}
    summary = f"run {run_id}: {meta.get('status')} ({meta.get('engine_kind')}), report {path_of(folder, 'report')}"
    if damage:  # a damaged journal is not `ok`: say which line, as `tc artifacts verify` would
        return Result("failed", f"{summary}; its journal is DAMAGED ({damage[0]})", [str(folder)], found,
                      exit_code=EXIT_CODES["check"], details=damage)
    return Result("ok", summary, [str(folder)], found)


def rerender(run_id: str, check: bool = False, charts: bool = False) -> Result:
    """`tc report RUN_ID`: bring report.md, report.html and the manifest up to date with the artifacts. CHARTS: a run
    whose page draws its charts on request only (over html.CHARTS_AT_RUN_TIME_BARS bars) gets them, recorded in its
    journal (report_charts_requested) so every later rendering draws them too."""
    folder, meta = load_metadata(run_id)
    path, page = path_of(folder, "report"), path_of(folder, "report_html")
    deferred = html.charts_deferred(folder, meta) if charts else None
    text = markdown.render(folder)
    current = fs.read_bytes(path).decode("utf-8", "replace") if fs.exists(path) else None
    page_current = deferred is None and fs.exists(page) and fs.read_bytes(page) == html.render(folder).encode("utf-8")
    where = [str(path), str(page)]
    if current == text and page_current:
        return Result("ok", f"report: {path} and {page.name} are current", where, {"report": str(path), "text": text})
    if check:
        what = f" with the charts of its {deferred:,} bars" if deferred is not None else ""
        return Result("changed", f"report: {path} (would be re-rendered{what})", where, {"report": str(path), "text": text})
    with fs.locked(folder, f"run {run_id}"):
        if deferred is not None and html.charts_deferred(folder, meta) is not None:  # another tc may have asked meanwhile
            journal.append(path_of(folder, "journal"), run_id, html.CHARTS_REQUESTED, {"bars": deferred})
        write_reports(folder)
        digests.write_manifest(path_of(folder, "manifest"), run_id, folder, run_files(folder))
    return Result("changed", f"report: {path} and {page.name}" + (" (charts drawn)" if deferred is not None else ""), where,
                  {"report": str(path), "text": text})
