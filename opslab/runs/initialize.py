"""The run folder for a spec: its dataset resolved for the operation, and `tc run init` (create the folder,
or ok when it already matches)."""

from __future__ import annotations

from opslab import fs, journal
from opslab.datasets import resolve
from opslab.result import Result, merge_status
from opslab.runs.run import open as run_open
from opslab.runs.run import path_of, refuse_other_engine, refuse_other_spec, run_dir
from opslab.spec import RunSpec


def dataset_for(spec: RunSpec) -> Result:
    """The spec's dataset, resolved once for the operation (after refusing a run id that names another
    spec or that another engine release made, so a refused command writes nothing): what it hands to `runs.open(spec, dataset=...)`."""
    fs.root_for_write()
    refuse_other_spec(spec, run_dir(spec.run_id))
    refuse_other_engine(spec, run_dir(spec.run_id))
    return resolve.converge_for_spec(spec.data)


def init(spec: RunSpec, check: bool = False) -> Result:
    """`tc run init`: converge the run folder for SPEC (create it, or ok when it already matches)."""
    folder = run_dir(spec.run_id)
    if check:
        present = fs.root().is_dir()
        if present:
            refuse_other_spec(spec, folder)
            refuse_other_engine(spec, folder)
        ds = resolve.converge_for_spec(spec.data, check=True)
        complete = present and fs.exists(path_of(folder, "manifest")) and journal.has_event(path_of(folder, "journal"), "dataset_linked")
        status = merge_status(ds.status, "ok" if complete else "changed")
        what = "is initialized" if complete else "would be initialized"
        return Result(status, f"run {spec.run_id} {what}; {ds.summary}", [str(folder)])
    with run_open(spec, dataset=dataset_for(spec)) as run:
        pass
    verb = "initialized" if run.status == "changed" else "is up to date"
    return Result(run.status, f"run {spec.run_id} {verb} at {folder}", [str(folder)],
                  {"run_id": spec.run_id, "run_dir": str(folder), "config_hash": spec.config_hash, "dataset_id": run.dataset["dataset_id"]})
