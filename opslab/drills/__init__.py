"""Failure drills: a registry mapping each drill's name to its definition (one module per drill)."""

from __future__ import annotations

from opslab.drills import (
    disconnect,
    mismatch,
    missing_update,
    node_crash,
    node_disconnect,
    node_kill_switch,
    node_missing_update,
    node_rate_limited_startup,
    node_restart_reconciliation,
    node_stale_book_connected,
    rate_limit_exhaustion,
    restart_recovery,
    stale_data,
    stale_orderbook,
)
from opslab.drills.base import Drill

DRILLS: dict[str, Drill] = {
    module.DRILL.name: module.DRILL
    for module in (stale_data, mismatch, restart_recovery, disconnect, missing_update, rate_limit_exhaustion, stale_orderbook,
                   node_crash, node_kill_switch, node_missing_update, node_disconnect,
                   node_stale_book_connected, node_rate_limited_startup,
                   node_restart_reconciliation)
}
