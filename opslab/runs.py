"""Run control: initialize a run folder from a spec, list runs, show one, update its metadata."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from opslab import __version__, artifacts, clock, data, journal, report, report_html, safety
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError
from opslab.result import Result, merge_status
from opslab.spec import RunSpec, config_hash

RUNSPEC = "runspec.json"
METADATA = "metadata.json"
METRICS = "metrics.json"
JOURNAL = "journal.jsonl"
REPORT = "report.md"


def versions() -> dict[str, str]:
    """Versions of the software that produced a run (no Nautilus import)."""
    import importlib.metadata  # here, not at module level: `tc spec validate` starts without it

    try:
        nautilus = importlib.metadata.version("nautilus_trader")
    except importlib.metadata.PackageNotFoundError:
        nautilus = "not installed"
    return {"opslab": __version__, "nautilus_trader": nautilus, "python": platform.python_version()}


def existing_hash(folder: Path) -> str | None:
    """Config hash of the spec a run folder was initialized with, or None when it has none."""
    path = folder / RUNSPEC
    if not path.exists():
        return None
    try:
        return config_hash(artifacts.read_json(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); inspect the run folder") from None


def _refuse_other_spec(spec: RunSpec, folder: Path) -> None:
    found = existing_hash(folder)
    if found is not None and found != spec.config_hash:
        raise InputError(
            f"{spec.path}: /run_id: run {spec.run_id!r} already exists with a different spec "
            f"({found[:19]}… vs {spec.config_hash[:19]}…); use a new run_id"
        )


def _metadata(spec: RunSpec, manifest: dict[str, Any]) -> dict[str, Any]:
    now = clock.now_iso()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": spec.run_id,
        "config_hash": spec.config_hash,
        "scenario": dict(spec.data["scenario"]),
        "strategy": dict(spec.data["strategy"]),
        "engine_kind": spec.data["engine"]["kind"],
        "dataset": {
            "dataset_id": manifest["dataset_id"],
            "fingerprint": manifest["fingerprint"],
            "rows": manifest["rows"],
            "first_bar_close": manifest["first_bar_close"],
            "last_bar_close": manifest["last_bar_close"],
        },
        "versions": versions(),
        "status": "initialized",
        "safety": safety.record(),
        "created_at": now,
        "updated_at": now,
    }


def init(spec: RunSpec, check: bool = False) -> Result:
    """Converge the run folder for SPEC: create it, or say ok when it already matches."""
    artifacts.ensure_writable_root()
    folder = artifacts.run_dir(spec.run_id)
    _refuse_other_spec(spec, folder)
    params = data.DatasetParams.from_spec(spec.data)
    complete = (folder / artifacts.MANIFEST).exists() and journal.has_event(folder / JOURNAL, "dataset_linked")
    if check:
        ds = data.prepare(params, check=True)
        status = merge_status(ds.status, "ok" if complete else "changed")
        what = "is initialized" if complete else "would be initialized"
        return Result(status, f"run {spec.run_id} {what}; {ds.summary}", [str(folder)])
    ds = data.prepare(params)
    manifest = ds.data["manifest"]
    with artifacts.locked(folder, f"run {spec.run_id}"):
        _refuse_other_spec(spec, folder)  # re-check under the lock
        changes = [ds.status]
        changes.append("changed" if artifacts.write_validated(folder / RUNSPEC, spec.data, "runspec") else "ok")
        if not (folder / METADATA).exists():
            artifacts.write_validated(folder / METADATA, _metadata(spec, manifest), "metadata")
            changes.append("changed")
        if not journal.has_event(folder / JOURNAL, "run_initialized"):
            journal.append(folder / JOURNAL, spec.run_id, "run_initialized", {"config_hash": spec.config_hash, "spec_file": spec.path.name})
            changes.append("changed")
        if not journal.has_event(folder / JOURNAL, "dataset_linked", fingerprint=manifest["fingerprint"]):
            journal.append(folder / JOURNAL, spec.run_id, "dataset_linked", {"dataset_id": manifest["dataset_id"], "fingerprint": manifest["fingerprint"], "rows": manifest["rows"]})
            changes.append("changed")
        if not (folder / METRICS).exists():
            artifacts.write_validated(folder / METRICS, {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "counters": {"dataset_rows": manifest["rows"]}}, "metrics")
            changes.append("changed")
        changes.append(finalize(folder, spec.run_id))
    status = merge_status(*changes)
    verb = "initialized" if status == "changed" else "is up to date"
    return Result(status, f"run {spec.run_id} {verb} at {folder}", [str(folder)], {"run_id": spec.run_id, "run_dir": str(folder), "config_hash": spec.config_hash, "dataset_id": manifest["dataset_id"]})


def finalize(folder: Path, run_id: str) -> str:
    """Re-render report.md and report.html from the artifacts and rewrite the manifest; changed or ok."""
    wrote_report = artifacts.write_bytes_atomic(folder / REPORT, report.render(folder).encode("utf-8"))
    wrote_report = artifacts.write_bytes_atomic(folder / report_html.REPORT_HTML, report_html.render(folder).encode("utf-8")) or wrote_report
    wrote_manifest = artifacts.write_manifest(folder, run_id)
    return "changed" if (wrote_report or wrote_manifest) else "ok"


def patch_metadata(folder: Path, **fields: Any) -> dict[str, Any]:
    """Set top-level metadata FIELDS (validated against the schema) and bump updated_at."""
    meta = artifacts.read_json(folder / METADATA)
    meta.update(fields)
    meta["updated_at"] = clock.now_iso()
    artifacts.write_validated(folder / METADATA, meta, "metadata")
    return meta


def record_safety(folder: Path, run_id: str) -> dict[str, Any]:
    """Store the kill switch as seen now in metadata.safety and journal kill_switch_checked."""
    seen = safety.record()
    patch_metadata(folder, safety=seen)
    journal.append(folder / JOURNAL, run_id, "kill_switch_checked", {"kill_switch": seen["kill_switch"], "engaged": seen["engaged"]})
    return seen


def load_metadata(run_id: str) -> tuple[Path, dict[str, Any]]:
    """A run's folder and metadata; InputError when there is no such run."""
    folder = artifacts.run_dir(run_id)
    path = folder / METADATA
    if not path.exists():
        raise InputError(f"run {run_id!r}: not found under {artifacts.runs_dir()}; see `tc run list`")
    try:
        return folder, artifacts.read_json(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); run `tc artifacts verify {run_id}`") from None


def run_ids() -> list[str]:
    """Run ids present under the artifacts root, sorted."""
    base = artifacts.runs_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and artifacts.RUN_ID_RE.fullmatch(p.name))


def list_runs() -> Result:
    """The `tc run list` operation."""
    rows = []
    for run_id in run_ids():
        try:
            _, meta = load_metadata(run_id)
        except InputError:
            rows.append({"run_id": run_id, "status": "unreadable"})
            continue
        rows.append({"run_id": run_id, "status": meta["status"], "engine_kind": meta["engine_kind"], "scenario": meta["scenario"]["name"], "created_at": meta["created_at"]})
    return Result("ok", f"{len(rows)} run(s) under {artifacts.runs_dir()}", data={"runs": rows})


def show(run_id: str) -> Result:
    """The `tc run show RUN_ID` operation."""
    folder, meta = load_metadata(run_id)
    events = journal.read(folder / JOURNAL)
    return Result(
        "ok",
        f"run {run_id}: {meta['status']} ({meta['engine_kind']}, scenario {meta['scenario']['name']}), report {folder / REPORT}",
        [str(folder)],
        {"metadata": meta, "journal_events": len(events), "last_event": events[-1]["event"] if events else None, "files": artifacts.run_files(folder)},
    )
