"""The `burst` lab strategy: market orders at a fixed rate on a timer, to test the kill switch under load.

It alternates a small market BUY and SELL every 1/orders_per_second seconds from its start, whatever the
bars do, so a node sends a steady stream of orders that fill at the venue (the red team's 10-40 orders/s).
Not a trading idea. Imported only from opslab.engine (it imports NautilusTrader); a spec names it as
strategy_path `opslab.engine.burst:BurstStrategy`, config_path `opslab.engine.burst:BurstConfig`.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

TIMER = "burst-orders"


class BurstConfig(StrategyConfig, frozen=True):
    """Parameters of the burst strategy (the lab fills instrument_id)."""

    instrument_id: InstrumentId
    orders_per_second: float = 40.0
    trade_size: str = "0.000100"


class BurstStrategy(Strategy):
    """A market order every tick of its timer, sides alternating; counts what it submitted and what was denied."""

    def __init__(self, config: BurstConfig) -> None:
        super().__init__(config)
        self.qty = None
        self.side = OrderSide.BUY
        self.submitted = 0

    def on_start(self) -> None:
        instrument = self.cache.instrument(self.config.instrument_id)
        self.qty = instrument.make_qty(Decimal(self.config.trade_size))
        self.clock.set_timer(TIMER, timedelta(seconds=1.0 / self.config.orders_per_second), callback=self._order)

    def _order(self, _event: object) -> None:
        # The strategy does not look at the trading state itself: a HALTED RiskEngine must deny what it sends.
        self.submit_order(self.order_factory.market(self.config.instrument_id, self.side, self.qty))
        self.submitted += 1
        self.side = OrderSide.SELL if self.side == OrderSide.BUY else OrderSide.BUY

    def on_stop(self) -> None:
        if TIMER in self.clock.timer_names:
            self.clock.cancel_timer(TIMER)

