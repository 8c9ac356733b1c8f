"""Scenario registry: a plain mapping from name to Scenario. Importing it never imports Nautilus."""

from __future__ import annotations

from typing import NamedTuple


class Scenario(NamedTuple):
    """A built-in scenario: a deterministic smoke test of the plumbing, not a trading strategy.

    Its strategy is an ordinary importable strategy (NautilusTrader's ImportableStrategyConfig form:
    strategy_path, config_path, config), exactly what a spec names for a user's own strategy.
    """

    name: str
    version: str
    summary: str
    strategy_path: str
    config_path: str
    config: dict
    account_type: str | None = None  # the market it needs: a key of market.ACCOUNT_TYPES (engine.node.account_type); None: any


SCENARIOS: dict[str, Scenario] = {
    "ops_smoke_demo": Scenario(
        name="ops_smoke_demo",
        version="1.0.0",
        summary="Buys a small fixed size on a fixed bar cadence and sells it back a few bars later, "
        "leaving the last position open; exercises market orders, fills, open and closed positions.",
        strategy_path="opslab.engine.smoke:SmokeStrategy",
        config_path="opslab.engine.smoke:SmokeConfig",
        config={"strategy_id": "SMOKE-001", "order_every_bars": 60, "hold_bars": 15, "trade_size": "0.010000"},
    ),
    "ops_smoke_futures": Scenario(
        name="ops_smoke_futures",
        version="1.0.0",
        summary="On a USD-M perpetual (a node with engine.node.account_type usdt_futures): opens a long, adds to it, reduces it, "
        "flips it short in one order and closes it, a step every few bars, keeping the last position open; exercises a "
        "netting position through zero, its entry price and the venue's funding.",
        strategy_path="opslab.engine.smoke_futures:FuturesSmokeStrategy",
        config_path="opslab.engine.smoke_futures:FuturesSmokeConfig",
        config={"strategy_id": "SMOKE-001", "step_bars": 4, "trade_size": "0.010"},
        account_type="usdt_futures",
    ),
}


def get(name: str) -> Scenario:
    """The scenario NAME (the spec was validated, so it exists)."""
    return SCENARIOS[name]
