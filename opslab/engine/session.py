"""Builds a NautilusTrader BacktestEngine for a spec and reads its state back as plain data.

Identifiers are fixed (trader, instance, strategy) and the fill model is seeded, so the same spec
on the same dataset gives the same orders, fills and positions. Position snapshot ids end in a
Python uuid4; the suffix is stripped. Order init ids and fill event ids (Rust UUID4, not
seedable) are never read.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import AccountType, OmsType, TradingState, position_side_to_str
from nautilus_trader.model.identifiers import TraderId, Venue
from nautilus_trader.model.objects import Currency, Money

from opslab import clock, contracts, fs, market
from opslab.contracts import SCHEMA_VERSION
from opslab.engine import strategies, versions
from opslab.engine.ops_actor import OpsActor, OpsActorConfig

TRADER_ID = "OPSLAB-001"
INSTANCE_ID = "00000000-0000-4000-8000-000000000001"


@dataclass
class Session:
    """One engine with its venue, instrument and strategy."""

    engine: BacktestEngine
    strategy: Any  # the spec's strategy (a NautilusTrader Strategy)
    ops: OpsActor  # the lab's bar counter and progress reporter
    instrument: Any
    venue: Venue
    bar_type: BarType

    def halt(self) -> int:
        """Map a stop onto Nautilus's own RiskEngine (HALTED) and cancel open orders; returns how many."""
        self.engine.kernel.risk_engine.set_trading_state(TradingState.HALTED)
        open_orders = self.engine.cache.orders_open(instrument_id=self.instrument.id)
        if open_orders:
            self.strategy.cancel_all_orders(self.instrument.id)
        return len(open_orders)

    log_folder: Path | None = None
    notes: RotationNotes | None = None  # drops the engine's rotation notes from stderr while it logs to files

    def dispose(self) -> None:
        try:
            self.engine.dispose()
        finally:
            if self.notes is not None:
                self.notes.stop()
        if self.log_folder is not None:
            tidy_log_names(self.log_folder)


class RotationNotes:
    """Keeps NautilusTrader's log-rotation notes off the process's stderr (file descriptor 2).

    From 1.222 (versions.prints_rotation_notes) the engine's Rust file logger prints
    "[NAUTILUS] Rotated log file, now logging to: <path>" on stderr at every rotation, from its own
    thread and past Python's sys.stderr. The run's logs are files in the run folder and nothing of
    the engine reaches the command line, so while the engine logs to files fd 2 is a pipe: a thread
    passes every other byte on to the real stderr unchanged and drops those lines. On releases that
    print no such note this does nothing.
    """

    def __init__(self) -> None:
        self._saved: int | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> RotationNotes:
        if not versions.prints_rotation_notes() or self._saved is not None:
            return self
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._saved = saved
        self._reader = threading.Thread(target=self._pump, args=(read_end, saved), name="opslab-engine-stderr", daemon=True)
        self._reader.start()
        return self

    @staticmethod
    def _pump(read_end: int, out: int) -> None:
        """Copy READ_END to OUT as bytes arrive, less each line that starts with the note. Only the start of a
        line that could still become a note is held back (a progress line with no newline passes at once)."""
        note = versions.ROTATION_NOTE
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending, at_line_start = b"", True
            while chunk := pipe.read(65536):
                data, pending, kept = pending + chunk, b"", []
                while data:
                    end = data.find(b"\n") + 1  # 0: no newline in data
                    if not at_line_start:  # the rest of a line already passed on
                        kept.append(data[:end] if end else data)
                        data, at_line_start = (data[end:], True) if end else (b"", False)
                    elif end:  # a whole line
                        if not data.startswith(note):
                            kept.append(data[:end])
                        data = data[end:]
                    elif data.startswith(note) or note.startswith(data):  # a note, or perhaps one: wait for more
                        pending, data = data, b""
                    else:
                        kept.append(data)
                        data, at_line_start = b"", False
                if kept:
                    os.write(out, b"".join(kept))
            if pending and not pending.startswith(note):
                os.write(out, pending)

    def stop(self) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees its end, passes on the rest
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._reader is None or not self._reader.is_alive():
            os.close(self._saved)
        self._saved, self._reader = None, None


@contextlib.contextmanager
def rotation_notes_dropped() -> Iterator[None]:
    """RotationNotes for the block (a live node logging to files)."""
    notes = RotationNotes().start()
    try:
        yield
    finally:
        notes.stop()


def tidy_log_names(folder: Path) -> None:
    """NautilusTrader names its log files engine_<date>_<HHMMSS>:<ms>.log; a ':' is no name the
    artifact contract accepts (nor a portable one), so it becomes '-' once the logger let go."""
    for name, kind in fs.entries(folder):
        if kind == "file" and ":" in name:
            os.rename(folder / name, folder / name.replace(":", "-"))  # same folder; the entry is no link (entries said file)
            fs.bump_generation(folder / name.replace(":", "-"))


LOG_LEVELS = {"error": "ERROR", "warning": "WARNING", "info": "INFO", "debug": "DEBUG"}


def log_folder(run_folder: Path) -> Path:
    """Where engine logs go in a run folder (the registry names it)."""
    return run_folder / contracts.artifact("engine_log").path.rsplit("/", 1)[0]


def logging_config(spec: dict[str, Any], run_folder: Path | None) -> LoggingConfig:
    """Engine logging from the spec's engine.log: bypassed (off), or to files in the run folder.

    The files are written by NautilusTrader's own logger (not through opslab.fs): the folder is
    created beneath the root without following links, the names carry NautilusTrader's wall-clock
    stamp, and two files of max_bytes/2 bound the total. Nothing goes to stdout either way.
    """
    log = spec["engine"].get("log", {})
    if log.get("level", "off") == "off" or run_folder is None:
        return LoggingConfig(bypass_logging=True)
    folder = log_folder(run_folder)
    fs.mkdirs(folder)
    return LoggingConfig(log_level="OFF", log_level_file=LOG_LEVELS[log["level"]], log_directory=str(folder),
                         log_file_name="engine", log_file_max_size=log["max_bytes"] // 2, log_file_max_backup_count=1,
                         log_colors=False)


def build(run_spec: Any, total_bars: int, instrument: Any, run_folder: Path | None = None, bar_type: str | None = None) -> Session:
    """An engine for RUN_SPEC (an opslab.spec.RunSpec): simulated BINANCE cash venue, the dataset's
    INSTRUMENT and BAR_TYPE (the catalog's: market.bar_type of the dataset's interval; 1m when not given), the
    spec's strategy (resolved by engine/strategies.py) and the lab's ops actor; engine logs into RUN_FOLDER
    when the spec asks for them."""
    spec = run_spec.data
    config = BacktestEngineConfig(
        trader_id=TraderId(TRADER_ID),
        instance_id=UUID4.from_str(INSTANCE_ID),
        logging=logging_config(spec, run_folder),
        # The post-run portfolio statistics (PnL, returns) are only logged, and the lab reports no PnL;
        # they cost a quarter of a 100k-bar run (pandas row by row per position).
        run_analysis=False,
    )
    engine = BacktestEngine(config=config)
    venue = Venue(spec["venue"])
    balances = [Money(Decimal(amount), Currency.from_str(ccy)) for ccy, amount in sorted(spec["engine"]["starting_balances"].items())]
    engine.add_venue(
        venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
        starting_balances=balances, fill_model=FillModel(random_seed=spec["engine"]["fill_seed"]),
    )
    engine.add_instrument(instrument)
    bar_type = BarType.from_str(bar_type or market.bar_type(str(instrument.id)))
    strategy = strategies.create(run_spec, total_bars, str(bar_type))
    ops = OpsActor(OpsActorConfig(component_id="OPSLAB-OPS", bar_type=bar_type, total_bars=total_bars))
    engine.add_actor(ops)
    engine.add_strategy(strategy)
    logs = log_folder(run_folder) if run_folder is not None and not config.logging.bypass_logging else None
    return Session(engine, strategy, ops, instrument, venue, bar_type, logs, RotationNotes().start() if logs is not None else None)


def _ts(ns: int) -> str:
    return clock.iso_from_ns(ns) if ns else ""


def _dec(value: Any) -> str:
    return format(Decimal(str(value)).normalize(), "f")


def _position_id(value: str) -> str:
    # NETTING snapshots append "-<uuid4>" to the position id; the uuid differs every run.
    parts = value.split("-")
    return "-".join(parts[:-5]) if len(parts) > 5 and len(parts[-1]) == 12 else value


def _rows(frame: Any, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """COLUMNS of a NautilusTrader report (indexed by an id) as plain rows; an empty report has no columns at all."""
    if frame.empty:
        return []
    frame = frame.reset_index()
    return frame[[c for c in columns if c in frame.columns]].to_dict("records")


ORDER_COLUMNS = ("client_order_id", "side", "type", "quantity", "filled_qty", "status", "ts_init", "price", "avg_px")
FILL_COLUMNS = ("trade_id", "client_order_id", "order_side", "last_qty", "last_px", "commission", "ts_event")
POSITION_COLUMNS = ("position_id", "side", "quantity", "peak_qty", "avg_px_open", "ts_opened", "ts_closed")


def _given(value: Any) -> bool:
    return value is not None and value is not pd.NaT and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))


def _ns(value: Any) -> int:
    """A report's time: an int of ns (orders) or a pandas Timestamp (fills, positions)."""
    return int(value.value) if isinstance(value, pd.Timestamp) else int(value)


# THE mapping from NautilusTrader's report columns (trader.generate_*_report) to the artifact schemas'
# fields (schemas/orders|fills|positions.schema.json). Decimals are normalized ("0.010000" -> "0.01").
def _order(r: dict[str, Any]) -> dict[str, Any]:
    row = {"client_order_id": r["client_order_id"], "side": r["side"], "type": r["type"], "quantity": _dec(r["quantity"]),
           "filled_qty": _dec(r["filled_qty"]), "status": r["status"], "ts_init": _ts(_ns(r["ts_init"]))}
    if _given(r.get("price")):
        row["price"] = _dec(r["price"])
    if Decimal(r["filled_qty"]) > 0:
        row["avg_px"] = _dec(round(Decimal(str(r["avg_px"])), 8))
    return row


def _fill(r: dict[str, Any]) -> dict[str, Any]:
    amount, currency = str(r["commission"]).split(" ")  # Money as text: "0.42018060 USDT"
    return {"trade_id": r["trade_id"], "client_order_id": r["client_order_id"], "side": r["order_side"], "quantity": _dec(r["last_qty"]),
            "price": _dec(r["last_px"]), "commission": _dec(amount), "commission_currency": currency, "ts_event": _ts(_ns(r["ts_event"]))}


def _position(r: dict[str, Any]) -> dict[str, Any]:
    # The report has no is_open column: a position (or snapshot) is open while it has no close time.
    is_open = not _given(r.get("ts_closed"))
    return {"position_id": _position_id(r["position_id"]), "side": r["side"] if is_open else "FLAT", "quantity": _dec(r["quantity"]),
            "peak_qty": _dec(r["peak_qty"]), "avg_px_open": _dec(round(Decimal(str(r["avg_px_open"])), 8)),
            "ts_opened": _ts(_ns(r["ts_opened"])), "ts_closed": None if is_open else _ts(_ns(r["ts_closed"])), "is_open": is_open}


def read_state(session: Session, source: str, run_id: str) -> dict[str, Any]:
    """Orders, fills, positions (NautilusTrader's own reports, mapped above), final state and counters
    of a finished (or halted) engine or node."""
    trader, cache = session.engine.trader, session.engine.cache
    orders = [_order(r) for r in _rows(trader.generate_orders_report(), ORDER_COLUMNS)]
    fills = [_fill(r) for r in _rows(trader.generate_fills_report(), FILL_COLUMNS)]
    positions = [_position(r) for r in _rows(trader.generate_positions_report(), POSITION_COLUMNS)]
    # Balances and the open orders/positions at the end come from the cache: the account report sorts
    # its rows by ts_event (not stably), so the last row of a currency need not be its latest balance,
    # and the orders report has no leaves_qty.
    account = cache.account_for_venue(session.venue)
    balances = {money.currency.code: _dec(money.as_decimal()) for money in account.balances_total().values()}
    open_positions = [
        {"instrument": session.instrument.id.value, "side": position_side_to_str(p.side), "quantity": _dec(p.quantity)}
        for p in cache.positions_open()
    ]
    open_orders = []
    for order in cache.orders_open():
        entry = {"client_order_id": order.client_order_id.value, "instrument": order.instrument_id.value,
                 "side": order.side_string(), "quantity": _dec(order.leaves_qty)}
        if order.has_price:
            entry["price"] = _dec(order.price)
        open_orders.append(entry)
    final_state = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "source": source,
                   "as_of": _ts(session.engine.kernel.clock.timestamp_ns()),
                   "positions": open_positions, "open_orders": open_orders, "balances": balances}
    counters = {
        "bars_processed": session.ops.bars_seen,
        "orders_submitted": len(orders),
        "orders_filled": sum(1 for o in orders if o["status"] == "FILLED"),
        "orders_denied": sum(1 for o in orders if o["status"] == "DENIED"),
        "orders_canceled": sum(1 for o in orders if o["status"] == "CANCELED"),
        "fills": len(fills),
        "positions_opened": len(positions),
        "positions_closed": sum(1 for p in positions if not p["is_open"]),
    }
    return {"orders": orders, "fills": fills, "positions": positions, "final_state": final_state,
            "counters": counters, "balances": balances}
