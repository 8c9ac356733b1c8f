"""`tc run paper`: a bounded paper lifecycle, no exchange and no network.

States: created -> preflight -> running -> stopping -> stopped, or blocked / failed. Every
transition is a journal event and is kept in paper/lifecycle.json, which is rewritten atomically
after every step, so a crash leaves a readable record. Running replays the synthetic feed through a
real NautilusTrader engine in bounded steps (streaming mode). Gates are checked in preflight and
between steps; a gate that blocks mid-run stops the run at the next step, mapped onto Nautilus's
own RiskEngine trading state HALTED with open orders cancelled inside the simulation.

Recovery: a lifecycle left in created/preflight/running/stopping was cut short (SIGKILL, power
loss): we hold the run's lock, so no other process runs it. The next `tc run paper` records
`recovered`, replays the already-journaled steps silently (the engine is deterministic, so it
reaches the same state) and continues from there; no event is written twice.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from opslab import runs
from opslab.datasets import resolve
from opslab.runs import outputs, preflight
from opslab.runs import lifecycle
from opslab.runs.lifecycle import Lifecycle
from opslab.engine import strategies
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.runs import Run
from opslab.spec import RunSpec

UNFINISHED = ("created", "preflight", "running", "stopping")
STEP_DELAY_ENV = "TC_TEST_STEP_DELAY_MS"  # test hook: sleep after each step so a test can kill mid-run
RECOVERY_ENV = "TC_PAPER_RECOVERY"  # test hook: "off" ignores an unfinished lifecycle (proves the restart drill can fail)


def step_delay_s() -> float:
    """The STEP_DELAY_ENV test hook in seconds (0 when unset); InputError when it is not a whole number of milliseconds."""
    text = os.environ.get(STEP_DELAY_ENV, "").strip() or "0"
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InputError(f"{STEP_DELAY_ENV}: {text[:40]!r}: expected a whole number of milliseconds (0 to 999999999)")
    return int(text) / 1000.0


@dataclass(frozen=True)
class Gate:
    """A named check; check() returns None to proceed or a reason to block/stop."""

    name: str
    check: Callable[[], "str | None"]
    blocks: bool = True  # a safety gate: stopping on it is exit 3 (blocked by safety)


def _load_lifecycle(run: Run, steps: int, per_step: int) -> Lifecycle:
    """paper/lifecycle.json (new when absent); each transition also carries the attempt and step."""
    doc = run.read("paper_lifecycle") or {
        "schema_version": SCHEMA_VERSION, "run_id": run.run_id, "state": "new", "stop_reason": None,
        "steps_total": steps, "bars_per_step": per_step, "steps_done": 0, "attempts": 0,
        "recoveries": 0, "cancelled_orders": [], "transitions": [],
    }
    return Lifecycle(run, "paper_lifecycle", "paper", doc, context=lambda d: {"attempt": d["attempts"], "step": d["steps_done"]})


class _Signals:
    """Turns SIGINT/SIGTERM into a graceful stop request checked between steps."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (in-process use): no signal handling
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_paper(spec: RunSpec, preflight_gates: Iterable[Gate] = (), step_gates: Iterable[Gate] = (),
              progress: Callable[[int, int], None] | None = None, check: bool = False) -> Result:
    """Converge the run to a stopped paper lifecycle (ok when it already stopped)."""
    preflight.check_kind(spec, "paper")
    planned = lifecycle.plan(spec, "paper_lifecycle", "paper lifecycle", f"the paper lifecycle of {spec.run_id}")
    if check or planned.status == "ok":
        return planned
    bounds = spec.data["engine"]["paper"]
    per_step = bounds["bars_per_step"]
    strategies.check(spec)  # import/config errors are exit 2 before anything of the run is written
    step_delay_s()  # so is a malformed test hook
    resolve.quality_gate(spec)  # a failed quality artifact is exit 4, also before anything is written
    with runs.open(spec, dataset=runs.dataset_for(spec)) as run:
        bars_given = min(bounds["steps"] * per_step, run.dataset["rows"], spec.data["engine"]["max_bars"])
        steps = -(-bars_given // per_step)  # the dataset may hold fewer bars than steps x bars_per_step
        life = _load_lifecycle(run, steps, per_step)
        if lifecycle.stopped(life.doc):  # another tc stopped it between the plan and the lock
            return lifecycle.already(spec, run.folder, life.doc, "paper lifecycle")
        replay = 0
        if life.doc["state"] in UNFINISHED and os.environ.get(RECOVERY_ENV) != "off":
            # The journal is the truth: a kill between journaling a step and saving lifecycle.json
            # must not make the step run (and be journaled) twice.
            replay = max([life.doc["steps_done"]] + [e["data"]["step"] for e in run.events()
                                                     if e["event"] == "paper_step" and e["data"].get("attempt") == life.doc["attempts"]])
            life.doc["steps_done"] = replay
            life.doc["recoveries"] += 1
            life.to("recovered", f"unfinished lifecycle found in state {life.doc['state']} after step {replay}")
        else:
            life.doc["attempts"] += 1
            life.doc["steps_done"] = 0
            life.to("created")
        life.to("preflight")
        run.record_safety()
        for gate in preflight_gates:
            reason = gate.check()
            if reason:
                run.event(f"{gate.name}_blocked", {"reason": reason})
                life.to("blocked", f"{gate.name}: {reason}")
                run.meta(status="blocked")
                return Result("blocked", f"run {spec.run_id}: paper blocked in preflight by {gate.name}: {reason}", [str(run.folder)],
                              {"run_id": spec.run_id, "gate": gate.name, "reason": reason}, exit_code=EXIT_CODES["safety"])
        blocked = preflight.stale_block(run)
        if blocked:
            life.to("blocked", "stale_data")
            return blocked
        life.to("running")
        run.meta(status="running")
        run.flush()
        try:
            state, reason, cancelled, bars_given = _drive(spec, run.dataset, bars_given, life, replay, step_gates, progress)
        except Exception as exc:
            life.to("failed", f"{type(exc).__name__}: {exc}")
            run.meta(status="failed")
            raise
        life.doc["stop_reason"] = reason
        life.doc["cancelled_orders"] = cancelled
        outputs.write_outputs(run, state, {"paper_steps": life.doc["steps_done"]})
        life.to("stopped", reason)
        run.meta(status="stopped", engine_summary=outputs.engine_summary(state, bars_given, "paper"))
    c = state["counters"]
    summary = (f"run {spec.run_id}: paper stopped ({reason}) after {life.doc['steps_done']}/{life.doc['steps_total']} steps: "
               f"{c['orders_submitted']} orders, {c['fills']} fills; report {run.path('report')}")
    halted = any(reason == gate.name for gate in step_gates if gate.blocks)
    return Result("halted" if halted else "changed", summary, [str(run.folder)],
                  {"run_id": spec.run_id, "run_dir": str(run.folder), "lifecycle": life.doc, "counters": c},
                  exit_code=EXIT_CODES["safety"] if halted else 0)


def _drive(spec: RunSpec, dataset: dict[str, Any], bars_given: int, life: Lifecycle, replay: int,
           step_gates: Iterable[Gate], progress: Callable[[int, int], None] | None) -> tuple[dict[str, Any], str, list[str], int]:
    from opslab.engine import catalog
    from opslab.engine import session as engine_session

    per_step, steps = life.doc["bars_per_step"], life.doc["steps_total"]
    delay = step_delay_s()
    folder, instrument = resolve.dataset_catalog(dataset)
    bars = catalog.bars(folder, dataset["catalog"]["bar_type"], bars_given)
    session = engine_session.build(spec, bars_given, instrument, life.run.folder, dataset["catalog"]["bar_type"])
    try:
        reason, cancelled = "completed", []
        with _Signals() as signals:
            for step in range(steps):
                session.engine.add_data(bars[step * per_step:(step + 1) * per_step])
                session.engine.run(streaming=True)
                session.engine.clear_data()
                if step < replay:
                    continue  # already journaled before the crash; the replay reaches the same state
                life.doc["steps_done"] = step + 1
                life.run.event("paper_step", {"attempt": life.doc["attempts"], "step": step + 1, "bars_processed": session.ops.bars_seen})
                life.save()
                if progress:
                    progress(step + 1, steps)
                if delay:
                    time.sleep(delay)
                stop = _stop_reason(signals, step_gates)
                if stop:
                    reason = stop
                    open_ids = [o.client_order_id.value for o in session.engine.cache.orders_open()]
                    life.to("stopping", reason)
                    session.halt()
                    session.engine.run(streaming=True)  # lets the cancels reach the simulated venue
                    cancelled = open_ids
                    break
            else:
                life.to("stopping", "completed")
        session.engine.end()
        return engine_session.read_state(session, "paper", life.run.run_id), reason, cancelled, bars_given
    finally:
        session.dispose()


def _stop_reason(signals: _Signals, gates: Iterable[Gate]) -> str | None:
    if signals.received:
        return f"signal {signals.received}"
    for gate in gates:
        why = gate.check()
        if why:
            return gate.name
    return None
