"""The ops_smoke_futures strategy, on a USD-M perpetual: a deterministic smoke test of a netting position, not a trading idea.

On the first bar it rests one far-away limit buy (an open order to reconcile and to cancel on a halt). Then a cycle of
five market orders STEP bars apart walks the position through every change a position has: open long 1x, add 1x (2x),
reduce 1x (1x), flip with one sell of 2x (short 1x), close 1x (flat). The last cycle that the bar bound would not let
finish stops before its close, so the run ends holding a short position.
Imported only from opslab.engine (it imports NautilusTrader).
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class FuturesSmokeConfig(StrategyConfig, frozen=True):
    """Parameters of the futures smoke strategy (the lab fills instrument_id, bar_type and total_bars)."""

    instrument_id: InstrumentId
    bar_type: BarType
    step_bars: int
    trade_size: str
    total_bars: int
    resting_limit_fraction: str = "0.5"


# The cycle: (side, multiple of trade_size) per step; the position after each is +1, +2, +1, -1, 0 trade sizes.
CYCLE = ((OrderSide.BUY, 1), (OrderSide.BUY, 1), (OrderSide.SELL, 1), (OrderSide.SELL, 2), (OrderSide.BUY, 1))


class FuturesSmokeStrategy(Strategy):
    """Open, add, reduce, flip and close a netting position on a fixed bar cadence, plus one resting limit order."""

    def __init__(self, config: FuturesSmokeConfig) -> None:
        super().__init__(config)
        self.bars_seen = 0
        self.instrument = None
        self.done = False

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        i = self.bars_seen
        self.bars_seen += 1
        cfg = self.config
        size = Decimal(cfg.trade_size)
        if i == 0:
            price = self.instrument.make_price(bar.close.as_decimal() * Decimal(cfg.resting_limit_fraction))
            self.submit_order(self.order_factory.limit(cfg.instrument_id, OrderSide.BUY, self.instrument.make_qty(size), price))
        if self.done or i % cfg.step_bars:
            return
        cycle, phase = divmod(i // cfg.step_bars, len(CYCLE))
        if phase == len(CYCLE) - 1 and ((cycle + 2) * len(CYCLE) - 1) * cfg.step_bars >= cfg.total_bars:
            self.done = True  # the next cycle would not complete: this one keeps its short, and the run ends holding it
            return
        side, times = CYCLE[phase]
        self.submit_order(self.order_factory.market(cfg.instrument_id, side, self.instrument.make_qty(size * times)))

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.config.bar_type)
