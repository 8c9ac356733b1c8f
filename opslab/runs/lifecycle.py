"""One lifecycle for paper and node runs: the state document (paper/lifecycle.json, node/lifecycle.json)
and its journal events, changed together by one transition."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from opslab import clock


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
