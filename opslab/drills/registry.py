"""The drill registry: mapping each drill's name to its definition (one module per drill)."""

from __future__ import annotations

from opslab.drills.base import Drill
from opslab.drills.lab import disconnect, mismatch, missing_update, rate_limit_exhaustion, restart_recovery, stale_data, stale_orderbook
from opslab.drills.node import ambiguous_submit as node_ambiguous_submit
from opslab.drills.node import cancel_fill_race as node_cancel_fill_race
from opslab.drills.node import clock_skew as node_clock_skew
from opslab.drills.node import crash as node_crash
from opslab.drills.node import disconnect as node_disconnect
from opslab.drills.node import duplicate_reports as node_duplicate_reports
from opslab.drills.node import fill_lost as node_fill_lost
from opslab.drills.node import futures_external_close as node_futures_external_close
from opslab.drills.node import futures_flip as node_futures_flip
from opslab.drills.node import futures_position_beyond_lookback as node_futures_position_beyond_lookback
from opslab.drills.node import futures_restart_with_position as node_futures_restart_with_position
from opslab.drills.node import half_open as node_half_open
from opslab.drills.node import kill_switch as node_kill_switch
from opslab.drills.node import missing_update as node_missing_update
from opslab.drills.node import order_rate_limit as node_order_rate_limit
from opslab.drills.node import orders_rejected as node_orders_rejected
from opslab.drills.node import partial_fills as node_partial_fills
from opslab.drills.node import rate_limited_startup as node_rate_limited_startup
from opslab.drills.node import restart_reconciliation as node_restart_reconciliation
from opslab.drills.node import stale_book_connected as node_stale_book_connected
from opslab.drills.node import user_stream_expiry as node_user_stream_expiry
from opslab.drills.node import warm_restart as node_warm_restart
from opslab.drills.node import warm_restart_flush as node_warm_restart_flush
from opslab.drills.node import warm_restart_venue_moved as node_warm_restart_venue_moved

DRILLS: dict[str, Drill] = {
    module.DRILL.name: module.DRILL
    for module in (stale_data, mismatch, restart_recovery, disconnect, missing_update, rate_limit_exhaustion, stale_orderbook,
                   node_crash, node_kill_switch, node_missing_update, node_disconnect,
                   node_stale_book_connected, node_rate_limited_startup,
                   node_restart_reconciliation, node_fill_lost, node_partial_fills, node_duplicate_reports,
                   node_ambiguous_submit, node_clock_skew, node_order_rate_limit,
                   node_user_stream_expiry, node_cancel_fill_race, node_warm_restart, node_warm_restart_flush,
                   node_warm_restart_venue_moved, node_half_open, node_orders_rejected,
                   node_futures_position_beyond_lookback, node_futures_restart_with_position, node_futures_external_close,
                   node_futures_flip)
}
