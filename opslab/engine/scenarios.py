"""Scenario registry: a plain mapping from name to Scenario. Importing it never imports Nautilus."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """A built-in scenario: a deterministic smoke test of the plumbing, not a trading strategy."""

    name: str
    version: str
    summary: str
    order_every_bars: int
    hold_bars: int
    trade_size: str


SCENARIOS: dict[str, Scenario] = {
    "ops_smoke_demo": Scenario(
        name="ops_smoke_demo",
        version="1.0.0",
        summary="Buys a small fixed size on a fixed bar cadence and sells it back a few bars later, "
        "leaving the last position open; exercises market orders, fills, open and closed positions.",
        order_every_bars=60,
        hold_bars=15,
        trade_size="0.010000",
    ),
}


def get(name: str) -> Scenario:
    """The scenario NAME (the spec was validated, so it exists)."""
    return SCENARIOS[name]
