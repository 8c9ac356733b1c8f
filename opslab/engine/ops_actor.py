"""The lab's own actor inside every engine: counts the bars the engine delivered and reports progress.

It is independent of the strategy (a user's strategy counts nothing for the lab), so "the engine
stopped early" (NautilusTrader's quiet stop on AccountBalanceNegative) is detected for any strategy.
"""

from __future__ import annotations

from typing import Callable

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import Bar, BarType

PROGRESS_EVERY = 5_000  # bars between progress reports


class OpsActorConfig(ActorConfig, frozen=True):
    """The bar type to watch and how many bars the run was given."""

    bar_type: BarType
    total_bars: int


class OpsActor(Actor):
    """Counts bars; calls PROGRESS(seen, total) every PROGRESS_EVERY bars and at the last one."""

    def __init__(self, config: OpsActorConfig) -> None:
        super().__init__(config)
        self.bars_seen = 0
        self.progress: Callable[[int, int], None] | None = None

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.bars_seen += 1
        total = self.config.total_bars
        if self.progress is not None and (self.bars_seen % PROGRESS_EVERY == 0 or self.bars_seen == total):
            self.progress(self.bars_seen, total)

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.config.bar_type)
