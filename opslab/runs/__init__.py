"""Runs: the run object (run.py) and the operations that drive one: backtest, paper and node.

The run object's API is re-exported here, so an operation reads `runs.open(spec, dataset=...)`.
"""

from opslab.runs.initialize import dataset_for, init
from opslab.runs.run import (
    Run,
    append_history,
    check_run_id,
    list_runs,
    load_metadata,
    open,
    path_of,
    read_artifact,
    rerender,
    retention,
    run_dir,
    run_files,
    run_ids,
    runs_dir,
    show,
    versions,
    write_reports,
)

__all__ = ["Run", "append_history", "check_run_id", "dataset_for", "init", "list_runs", "load_metadata", "open", "path_of", "read_artifact",
           "rerender", "retention", "run_dir", "run_files", "run_ids", "runs_dir", "show", "versions", "write_reports"]
