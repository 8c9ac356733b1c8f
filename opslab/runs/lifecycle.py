"""One lifecycle for paper and node runs: the state document (paper/lifecycle.json, node/lifecycle.json)
and its journal events, changed together by one transition."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from pathlib import Path

from opslab import clock
from opslab.result import Result
from opslab.runs.initialize import init
from opslab.runs.run import read_artifact, run_dir
from opslab.spec import RunSpec


class RunLike(Protocol):
    def write(self, name: str, doc: Any) -> Any: ...
    def event(self, name: str, data: dict[str, Any]) -> Any: ...


class Lifecycle:
    """DOC written as ARTIFACT on every transition, with a `<prefix>_<state>` journal event. CONTEXT adds
    fields to both the transition and the event (paper: its attempt and step); a state in STOP_STATES also
    records the reason as the document's stop_reason."""

    def __init__(self, run: RunLike, artifact: str, prefix: str, doc: dict[str, Any],
                 context: Callable[[dict[str, Any]], dict[str, Any]] | None = None, stop_states: tuple[str, ...] = ()) -> None:
        self.run, self.artifact, self.prefix, self.doc = run, artifact, prefix, doc
        self.context, self.stop_states = context, stop_states

    def save(self) -> None:
        self.run.write(self.artifact, self.doc)

    def to(self, state: str, reason: str | None = None, event: str | None = None, **fields: Any) -> None:
        """Move to STATE: the document and its transitions first, then the journal event (EVENT overrides its name)."""
        self.doc["state"] = state
        if state in self.stop_states:
            self.doc["stop_reason"] = reason
        extra = self.context(self.doc) if self.context else {}
        self.doc["transitions"].append({"state": state, "at": clock.now_iso(), **extra, "reason": reason})
        self.save()
        self.run.event(event or f"{self.prefix}_{state}", {**extra, "reason": reason, **fields})


def stopped(life: dict[str, Any] | None) -> bool:
    """The one test of "already done" for a lifecycle run: its plan asks it, and the command asks it again under
    the run's lock."""
    return bool(life) and life["state"] == "stopped"


def plan(spec: RunSpec, artifact: str, what: str, doing: str) -> Result:
    """What a lifecycle run's command does: ok when WHAT (its lifecycle ARTIFACT) already stopped, with the run
    folder and dataset intact, else changed (DOING says what would run). `--check` prints it; the command acts on it."""
    planned = init(spec, check=True)
    folder = run_dir(spec.run_id)
    life = read_artifact(folder, artifact) if planned.status == "ok" else None
    if stopped(life):
        return already(spec, folder, life, what)
    return Result("changed", f"would run {doing}; {planned.summary}", [str(folder)])


def already(spec: RunSpec, folder: Path, life: dict[str, Any], what: str) -> Result:
    """The ok result of a lifecycle run that already stopped."""
    return Result("ok", f"run {spec.run_id}: {what} already stopped ({life['stop_reason']})", [str(folder)],
                  {"run_id": spec.run_id, "run_dir": str(folder), "lifecycle": life})
