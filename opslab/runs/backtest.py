"""`tc run backtest`: the real NautilusTrader BacktestEngine over the run's dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from opslab import fs, journal, runs
from opslab.datasets import resolve
from opslab.runs import outputs, preflight
from opslab.engine import strategies
from opslab.errors import OpsLabError
from opslab.result import Result
from opslab.spec import RunSpec


class EngineFailed(OpsLabError):
    """The engine stopped early or raised; the run is marked failed."""

    exit_code = 1


def completed(folder: Path) -> bool:
    """The one test of "already done": the plan asks it, and the command asks it again under the run's lock."""
    meta = runs.read_artifact(folder, "metadata") or {}
    return meta.get("status") == "completed" and journal.has_event(runs.path_of(folder, "journal"), "backtest_completed")


def plan(spec: RunSpec, explain: bool = True) -> Result:
    """What `tc run backtest` does: ok when the backtest already completed with this spec and its run folder and
    dataset are intact, else changed. `--check` prints this plan; the command acts on the same one (EXPLAIN=False
    skips the dataset check that only explains a run still to do)."""
    folder = runs.run_dir(spec.run_id)
    done = fs.root().is_dir() and completed(folder)
    init = runs.init(spec, check=True) if done or explain else None
    if done and init is not None and init.status == "ok":
        return _already(spec, folder)
    return Result("changed", f"would run the backtest of {spec.run_id}" + (f"; {init.summary}" if init else ""), [str(folder)])


def _already(spec: RunSpec, folder: Path) -> Result:
    counters = (runs.read_artifact(folder, "metrics") or {}).get("counters", {})
    return Result("ok", f"run {spec.run_id}: backtest already completed ({runs.path_of(folder, 'report')})", [str(folder)],
                  {"run_id": spec.run_id, "run_dir": str(folder), "counters": counters})


def run_backtest(spec: RunSpec, progress: Callable[[int, int], None] | None = None, check: bool = False) -> Result:
    """Converge the run to a completed backtest: act on plan(spec), which says ok when it already completed.
    PROGRESS, when given, is called with (bars processed, bars in total) as the engine runs."""
    preflight.check_kind(spec, "backtest")
    planned = plan(spec, explain=check)
    if check or planned.status == "ok":
        return planned
    strategies.check(spec)  # import/config errors are exit 2 before anything of the run is written
    resolve.quality_gate(spec)  # a failed quality artifact is exit 4, also before anything is written
    with runs.open(spec, dataset=runs.dataset_for(spec)) as run:
        if completed(run.folder):  # another tc completed it between the plan and the lock
            return _already(spec, run.folder)
        blocked = preflight.stale_block(run)
        if blocked:
            return blocked
        run.record_safety()  # a backtest only records the switch; it trades nothing real
        bars_given = preflight.bars_to_use(spec, run.dataset)
        run.event("backtest_started", {"bars": bars_given, "dataset_id": run.dataset["dataset_id"]})
        run.meta(status="running")
        run.flush()
        try:
            state = _execute(spec, run.dataset, bars_given, progress, run.folder)
            processed = state["counters"]["bars_processed"]
            if processed != bars_given:
                raise EngineFailed(f"engine stopped after {processed} of {bars_given} bars (see NautilusTrader's AccountBalanceNegative pitfall)")
        except Exception as exc:
            run.event("backtest_failed", {"error": f"{type(exc).__name__}: {exc}"})
            run.meta(status="failed")
            if isinstance(exc, OpsLabError):
                raise
            raise EngineFailed(f"run {spec.run_id}: backtest failed: {type(exc).__name__}: {exc}") from exc
        outputs.write_outputs(run, state)
        run.event("backtest_completed", {"counters": state["counters"]})
        run.meta(status="completed", engine_summary=outputs.engine_summary(state, bars_given, "backtest"))
    c = state["counters"]
    return Result("changed", f"run {spec.run_id}: backtest completed: {c['bars_processed']} bars, {c['orders_submitted']} orders, "
                  f"{c['fills']} fills, {c['positions_opened']} positions ({c['positions_closed']} closed); report {run.path('report')}",
                  [str(run.folder)], {"run_id": spec.run_id, "run_dir": str(run.folder), "counters": c})


def _execute(spec: RunSpec, dataset: dict[str, Any], bars_given: int, progress: Callable[[int, int], None] | None,
             run_folder: Path | None = None) -> dict:
    from opslab.engine import catalog
    from opslab.engine import session as engine_session

    folder, instrument = resolve.dataset_catalog(dataset)
    session = engine_session.build(spec, bars_given, instrument, run_folder, dataset["catalog"]["bar_type"])
    session.ops.progress = progress
    try:
        session.engine.add_data_iterator("bars", catalog.stream(folder, dataset["catalog"]["bar_type"], bars_given))
        session.engine.run()
        return engine_session.read_state(session, "backtest", spec.run_id)
    finally:
        session.dispose()
