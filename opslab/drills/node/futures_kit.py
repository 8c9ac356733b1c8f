"""What the USD-M Futures position drills share: how NautilusTrader holds the orders it did not place, the node's net
position against the venue's, and `tc reconcile` with its alert. Built on kit.NodeLab (futures_step_bars)."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from dataclasses import dataclass
from typing import Any

from opslab.drills.node.kit import NodeLab

POSITION_ALERTS = ("TcNodeExternalOrders", "TcReconciliationMismatch")
HOLD_STEP_BARS = 100_000  # the futures smoke strategy's step: it opens a long and rests a limit buy on its first bar, then holds


def foreign_orders(lab: NodeLab) -> list[dict[str, str]]:
    """The orders in NautilusTrader's report that no strategy of the node placed (strategy EXTERNAL, INTERNAL-DIFF, ...), with the
    tags NautilusTrader gave them (VENUE, EXTERNAL, RECONCILIATION, INTERNAL) and their fill price."""
    return [{"strategy_id": o.get("strategy_id", ""), "side": o.get("side", ""), "quantity": o.get("quantity", ""),
             "status": o.get("status", ""), "tags": ",".join(re.findall(r"[A-Z][A-Z_-]*", o.get("tags", ""))), "avg_px": o.get("avg_px", "")}
            for o in lab.nautilus_orders() if not o.get("strategy_id", "").startswith("SMOKE-")]


def describe_foreign(orders: list[dict[str, str]]) -> str:
    if not orders:
        return "holds no order it did not place"
    return "holds " + "; ".join(f"{o['strategy_id']} {o['side']} {o['quantity']} {o['status']} (tags {o['tags'] or 'none'}"
                                + (f", filled at {Decimal(o['avg_px']):.2f}" if o["avg_px"] else "") + ")" for o in orders)


def reconcile(lab: NodeLab, alert: dict[str, Any] | None, timeout: float = 20) -> tuple[int, list[dict[str, Any]], dict[str, Any] | None]:
    """`tc reconcile` of the stopped node against the venue's record: its exit code, its mismatches, and the mismatch alert
    (TcReconciliationMismatch delivered) when it found one and no alert was delivered yet."""
    seq = lab.stack.last_seq()
    recon = lab.ctx.tc("reconcile", "--spec", str(lab.spec_path))
    report = lab.output("reconciliation")
    mismatches = [{k: c.get(k) for k in ("kind", "field", "expected", "observed")} for c in report.get("checks", [])
                  if c.get("status") == "mismatch"]
    if recon.code == 4 and alert is None:
        alert = lab.detect(("TcReconciliationMismatch",), time.monotonic(), timeout=timeout, after_seq=seq)
    return recon.code, mismatches, alert


def describe_reconcile(code: int, mismatches: list[dict[str, Any]]) -> str:
    if code == 0:
        return "`tc reconcile` (node vs venue: position side, quantity and entry price, open orders, wallet) found no mismatch"
    return (f"`tc reconcile` exited {code}: " + "; ".join(f"{m['kind']} {m['field']} venue {m['expected']} node {m['observed']}"
                                                           for m in mismatches[:6]))


def positions(lab: NodeLab) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The node's final net position (with its entry price) and the venue's record of it, as the run wrote them."""
    node = (lab.output("final_state").get("positions") or [None])[0]
    venue = (lab.output("venue_record").get("positions") or [None])[0]
    return node, venue


def describe_position(row: dict[str, Any] | None) -> str:
    return f"{row['side']} {row['quantity']} at {row.get('entry_price', '?')}" if row else "FLAT"


@dataclass
class Outcome:
    """What a position drill saw once its incident played out: the alert (one of ALERTS, or the mismatch alert `tc reconcile`
    raised), the node's last heartbeat, `tc reconcile`'s exit code and mismatches, the orders no strategy placed, and the
    node's and the venue's final positions."""

    alert: dict[str, Any] | None
    beat: dict[str, Any]
    reconcile_code: int
    mismatches: list[dict[str, Any]]
    foreign: list[dict[str, str]]
    node_position: dict[str, Any] | None
    venue_position: dict[str, Any] | None


def settle(lab: NodeLab, alerts: tuple[str, ...], since: float, seq: int, timeout: float) -> Outcome:
    """Wait up to TIMEOUT for one of ALERTS (delivered after SEQ, timed from SINCE), stop the node, reconcile it with the venue
    (its mismatch alert counts when none of ALERTS came) and read what it held."""
    alert = lab.detect(alerts, since, timeout=timeout, after_seq=seq)
    beat = lab.heartbeat() or {}
    lab.stop_node()
    code, mismatches, mismatch_alert = reconcile(lab, alert)
    node_pos, venue_pos = positions(lab)
    return Outcome(alert or mismatch_alert, beat, code, mismatches, foreign_orders(lab), node_pos, venue_pos)
