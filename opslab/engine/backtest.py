"""`tc run backtest`: the real NautilusTrader BacktestEngine over the run's prepared dataset."""

from __future__ import annotations

from typing import Callable

from opslab import artifacts, journal, runs
from opslab.engine import runio
from opslab.errors import OpsLabError
from opslab.result import Result
from opslab.spec import RunSpec


class EngineFailed(OpsLabError):
    """The engine stopped early or raised; the run is marked failed."""

    exit_code = 1


def run_backtest(spec: RunSpec, progress: Callable[[int, int], None] | None = None) -> Result:
    """Converge the run to a completed backtest: ok when it already completed with this spec.
    PROGRESS, when given, is called with (bars processed, bars in total) as the engine runs."""
    runio.check_kind(spec, "backtest")
    manifest, bars_csv = runio.dataset(spec)
    init = runs.init(spec)
    folder = artifacts.run_dir(spec.run_id)
    with artifacts.locked(folder, f"run {spec.run_id}"):
        meta = artifacts.read_json(folder / runs.METADATA)
        if meta["status"] == "completed" and journal.has_event(folder / runs.JOURNAL, "backtest_completed"):
            return Result("ok", f"run {spec.run_id}: backtest already completed ({folder / runs.REPORT})", [str(folder)],
                          {"run_id": spec.run_id, "run_dir": str(folder), "counters": artifacts.read_json(folder / runs.METRICS)["counters"]})
        blocked = runio.stale_block(spec, folder, manifest)
        if blocked:
            return blocked
        runs.record_safety(folder, spec.run_id)  # a backtest only records the switch; it trades nothing real
        bars_given = runio.bars_to_use(spec, manifest)
        journal.append(folder / runs.JOURNAL, spec.run_id, "backtest_started", {"bars": bars_given, "dataset_id": manifest["dataset_id"]})
        runs.patch_metadata(folder, status="running")
        try:
            state = _execute(spec, bars_csv, bars_given, progress)
            processed = state["counters"]["bars_processed"]
            if processed != bars_given:
                raise EngineFailed(f"engine stopped after {processed} of {bars_given} bars (see NautilusTrader's AccountBalanceNegative pitfall)")
        except Exception as exc:
            journal.append(folder / runs.JOURNAL, spec.run_id, "backtest_failed", {"error": f"{type(exc).__name__}: {exc}"})
            runs.patch_metadata(folder, status="failed")
            runs.finalize(folder, spec.run_id)
            if isinstance(exc, OpsLabError):
                raise
            raise EngineFailed(f"run {spec.run_id}: backtest failed: {type(exc).__name__}: {exc}") from exc
        runio.write_outputs(folder, spec.run_id, state)
        journal.append(folder / runs.JOURNAL, spec.run_id, "backtest_completed", {"counters": state["counters"]})
        runs.patch_metadata(folder, status="completed", engine_summary=runio.engine_summary(state, bars_given, "backtest"))
        runs.finalize(folder, spec.run_id)
    c = state["counters"]
    return Result("changed", f"run {spec.run_id}: backtest completed: {c['bars_processed']} bars, {c['orders_submitted']} orders, "
                  f"{c['fills']} fills, {c['positions_opened']} positions ({c['positions_closed']} closed); report {folder / runs.REPORT}",
                  [str(folder)], {"run_id": spec.run_id, "run_dir": str(folder), "counters": c, "init": init.status})


def _execute(spec: RunSpec, bars_csv, bars_given: int, progress: Callable[[int, int], None] | None) -> dict:
    from opslab.engine import nautilus

    session = nautilus.build(spec.data, bars_given)
    session.strategy.progress = progress
    try:
        session.engine.add_data(nautilus.load_bars(bars_csv, bars_given, session.instrument, session.bar_type))
        session.engine.run()
        return nautilus.read_state(session, "backtest", spec.run_id)
    finally:
        session.dispose()
