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
from pathlib import Path
from typing import Any, Callable, Iterable

from opslab import artifacts, clock, journal, runs
from opslab.engine import runio
from opslab.errors import SafetyBlocked
from opslab.result import Result
from opslab.spec import RunSpec

LIFECYCLE = "paper/lifecycle.json"
UNFINISHED = ("created", "preflight", "running", "stopping")
STEP_DELAY_ENV = "TC_TEST_STEP_DELAY_MS"  # test hook: sleep after each step so a test can kill mid-run
RECOVERY_ENV = "TC_PAPER_RECOVERY"  # test hook: "off" ignores an unfinished lifecycle (proves the restart drill can fail)


@dataclass(frozen=True)
class Gate:
    """A named check; check() returns None to proceed or a reason to block/stop."""

    name: str
    check: Callable[[], "str | None"]


class _Lifecycle:
    """paper/lifecycle.json plus the matching journal events."""

    def __init__(self, folder: Path, run_id: str, doc: dict[str, Any]) -> None:
        self.folder, self.run_id, self.doc = folder, run_id, doc

    @classmethod
    def load(cls, folder: Path, run_id: str, steps: int, per_step: int) -> "_Lifecycle":
        path = folder / LIFECYCLE
        if path.exists():
            return cls(folder, run_id, artifacts.read_json(path))
        return cls(folder, run_id, {
            "schema_version": 1, "run_id": run_id, "state": "new", "stop_reason": None,
            "steps_total": steps, "bars_per_step": per_step, "steps_done": 0, "attempts": 0,
            "recoveries": 0, "cancelled_orders": [], "transitions": [],
        })

    def save(self) -> None:
        artifacts.write_validated(self.folder / LIFECYCLE, self.doc, "paper_lifecycle")

    def to(self, state: str, reason: str | None = None, **data: Any) -> None:
        self.doc["state"] = state
        entry = {"state": state, "at": clock.now_iso(), "attempt": self.doc["attempts"], "step": self.doc["steps_done"], "reason": reason}
        self.doc["transitions"].append(entry)
        self.save()
        event = "paper_recovered" if state == "recovered" else f"paper_{state}"
        journal.append(self.folder / runs.JOURNAL, self.run_id, event,
                       {"attempt": self.doc["attempts"], "step": self.doc["steps_done"], "reason": reason, **data})


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
              progress: Callable[[int, int], None] | None = None) -> Result:
    """Converge the run to a stopped paper lifecycle (ok when it already stopped)."""
    runio.check_kind(spec, "paper")
    manifest, bars_csv = runio.dataset(spec)
    runs.init(spec)
    folder = artifacts.run_dir(spec.run_id)
    bounds = spec.data["engine"]["paper"]
    per_step = bounds["bars_per_step"]
    bars_given = min(bounds["steps"] * per_step, manifest["rows"], spec.data["engine"]["max_bars"])
    steps = -(-bars_given // per_step)  # the dataset may hold fewer bars than steps x bars_per_step
    with artifacts.locked(folder, f"run {spec.run_id}"):
        life = _Lifecycle.load(folder, spec.run_id, steps, per_step)
        if life.doc["state"] == "stopped":
            return Result("ok", f"run {spec.run_id}: paper lifecycle already stopped ({life.doc['stop_reason']})", [str(folder)],
                          {"run_id": spec.run_id, "run_dir": str(folder), "lifecycle": life.doc})
        replay = 0
        if life.doc["state"] in UNFINISHED and os.environ.get(RECOVERY_ENV) != "off":
            # The journal is the truth: a kill between journaling a step and saving lifecycle.json
            # must not make the step run (and be journaled) twice.
            replay = max([life.doc["steps_done"]] + [e["data"]["step"] for e in journal.read(folder / runs.JOURNAL)
                                                     if e["event"] == "paper_step" and e["data"].get("attempt") == life.doc["attempts"]])
            life.doc["steps_done"] = replay
            life.doc["recoveries"] += 1
            life.to("recovered", f"unfinished lifecycle found in state {life.doc['state']} after step {replay}")
        else:
            life.doc["attempts"] += 1
            life.doc["steps_done"] = 0
            life.to("created")
        life.to("preflight")
        runs.record_safety(folder, spec.run_id)
        for gate in preflight_gates:
            reason = gate.check()
            if reason:
                journal.append(folder / runs.JOURNAL, spec.run_id, f"{gate.name}_blocked", {"reason": reason})
                life.to("blocked", f"{gate.name}: {reason}")
                runs.patch_metadata(folder, status="blocked")
                runs.finalize(folder, spec.run_id)
                return Result("failed", f"run {spec.run_id}: paper blocked in preflight by {gate.name}: {reason}", [str(folder)],
                              {"run_id": spec.run_id, "gate": gate.name, "reason": reason}, exit_code=SafetyBlocked.exit_code)
        blocked = runio.stale_block(spec, folder, manifest)
        if blocked:
            life.to("blocked", "stale_data")
            runs.finalize(folder, spec.run_id)
            return blocked
        life.to("running")
        runs.patch_metadata(folder, status="running")
        try:
            outcome = _drive(spec, bars_csv, bars_given, life, replay, step_gates, progress)
        except Exception as exc:
            life.to("failed", f"{type(exc).__name__}: {exc}")
            runs.patch_metadata(folder, status="failed")
            runs.finalize(folder, spec.run_id)
            raise
        state, reason, cancelled, bars_given = outcome
        life.doc["stop_reason"] = reason
        life.doc["cancelled_orders"] = cancelled
        runio.write_outputs(folder, spec.run_id, state, {"paper_steps": life.doc["steps_done"]})
        life.to("stopped", reason)
        runs.patch_metadata(folder, status="stopped", engine_summary=runio.engine_summary(state, bars_given, "paper"))
        runs.finalize(folder, spec.run_id)
    c = state["counters"]
    return Result("changed", f"run {spec.run_id}: paper stopped ({reason}) after {life.doc['steps_done']}/{life.doc['steps_total']} steps: "
                  f"{c['orders_submitted']} orders, {c['fills']} fills; report {folder / runs.REPORT}",
                  [str(folder)], {"run_id": spec.run_id, "run_dir": str(folder), "lifecycle": life.doc, "counters": c})


def _drive(spec: RunSpec, bars_csv: Path, bars_given: int, life: _Lifecycle, replay: int,
           step_gates: Iterable[Gate], progress: Callable[[int, int], None] | None) -> tuple[dict[str, Any], str, list[str], int]:
    from opslab.engine import nautilus

    per_step, steps = life.doc["bars_per_step"], life.doc["steps_total"]
    delay = int(os.environ.get(STEP_DELAY_ENV, "0") or 0) / 1000.0
    session = nautilus.build(spec.data, bars_given)
    try:
        bars = nautilus.load_bars(bars_csv, bars_given, session.instrument, session.bar_type)
        reason, cancelled = "completed", []
        with _Signals() as signals:
            for step in range(steps):
                session.engine.add_data(bars[step * per_step:(step + 1) * per_step])
                session.engine.run(streaming=True)
                session.engine.clear_data()
                if step < replay:
                    continue  # already journaled before the crash; the replay reaches the same state
                life.doc["steps_done"] = step + 1
                journal.append(life.folder / runs.JOURNAL, life.run_id, "paper_step",
                               {"attempt": life.doc["attempts"], "step": step + 1, "bars_processed": session.strategy.bars_seen})
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
        return nautilus.read_state(session, "paper", life.run_id), reason, cancelled, bars_given
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
