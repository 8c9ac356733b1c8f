"""The node's automatic soft halt (spec engine.node.auto_halt): which of its streams are stale, and when one is fresh again.

The ops actor (engine/live.py) measures a receive age per stream and calls `StreamWatch.step` on its kill-switch poll:
- market_data: seconds since the last trade, quote or bar;
- book: seconds since the last order book update;
- user_stream: how long the node has waited on its user data stream. Binance sends nothing on it while an account is
  quiet, so silence alone is no staleness: the age counts only while an order waits for the stream's answer (sent and
  not yet acknowledged, or a cancel or modify sent and not yet answered), from the later of that wait's start and the
  stream's last event; 0 while nothing waits.

A stream whose age passes its bound is stale: the actor moves the node to REDUCING (the RiskEngine then denies every
order that would grow the position) and records `auto: stale <stream>` in the kill switch's history. A stale stream is
fresh again when its age is back within the bound; for the user stream an event must also have arrived since it went
stale (the engine's own order checks may settle the waiting orders without the stream, which does not make it fresh).
Nothing here imports NautilusTrader: the decision is plain data, tested without a node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STREAMS = ("market_data", "book", "user_stream")
SPEC_FIELDS = {f"{stream}_seconds": stream for stream in STREAMS}  # engine.node.auto_halt's fields -> the stream each bounds


@dataclass(frozen=True)
class Change:
    """One stream going stale (stale=True) or fresh again, with its age and bound at that moment."""

    stream: str
    stale: bool
    age_s: float | None
    bound_s: float

    @property
    def reason(self) -> str:
        """The kill switch history's reason (at most 200 characters)."""
        age = f"{self.age_s:.1f} s" if self.age_s is not None else "no age"
        if self.stale:
            return f"auto: stale {self.stream} ({age} > {self.bound_s:g} s)"
        return f"auto: {self.stream} fresh again ({age} <= {self.bound_s:g} s)"


@dataclass
class StreamWatch:
    """The bounds by stream (the spec's engine.node.auto_halt) and the streams stale now, with when each went stale."""

    bounds: dict[str, float]
    stale: dict[str, int] = field(default_factory=dict)  # stream -> the clock (ns) when it went stale

    @classmethod
    def from_spec(cls, block: dict[str, float | None] | None) -> "StreamWatch | None":
        """None when the spec has no auto_halt (off by default) or bounds no stream."""
        bounds = {SPEC_FIELDS[k]: float(v) for k, v in (block or {}).items() if k in SPEC_FIELDS and v is not None}
        return cls(bounds) if bounds else None

    def step(self, now_ns: int, ages: dict[str, float | None], last_user_event_ns: int | None) -> list[Change]:
        """Compare AGES (seconds; None: not measured yet, never stale) with the bounds; the changes since the last step."""
        changes = []
        for stream, bound in self.bounds.items():
            age = ages.get(stream)
            if stream not in self.stale:
                if age is not None and age > bound:
                    self.stale[stream] = now_ns
                    changes.append(Change(stream, True, age, bound))
                continue
            heard = stream != "user_stream" or (last_user_event_ns or 0) > self.stale[stream]
            if age is not None and age <= bound and heard:
                del self.stale[stream]
                changes.append(Change(stream, False, age, bound))
        return changes


def user_stream_age(now_ns: int, waiting_since_ns: list[int], last_event_ns: int | None) -> float:
    """Seconds the node has waited on its user stream: from the later of the oldest wait's start (WAITING_SINCE_NS: when
    each waiting order was last updated) and the stream's last event; 0 when nothing waits."""
    if not waiting_since_ns:
        return 0.0
    since = max(min(waiting_since_ns), last_event_ns or 0)
    return round(max(0.0, (now_ns - since) / 1e9), 3)
