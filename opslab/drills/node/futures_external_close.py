"""node_futures_external_close: another client of the same account closes the node's USD-M position (a reduce-only market sell
on /fapi/v1/order, as a second program or a person at the exchange's page would; nautilus_trader#4454). The node hears of it
only on its user stream, as an ORDER_TRADE_UPDATE for an order it never placed. Detected: the order in the node's cache that
none of its strategies placed (tc_node_external_orders), TcNodeExternalOrders delivered. Recorded: what NautilusTrader made of
the fill (the strategy id and tags it gave the order), whether the strategy's position closed with it, and `tc reconcile`."""

from __future__ import annotations

import time

from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node import futures_kit as fk
from opslab.drills.node.kit import NodeLab, observation

DETECT_TIMEOUT_S = 25.0


def execute(ctx: Context) -> Observation:
    with NodeLab(ctx, "node-futures-external-close", speed=300, futures_step_bars=fk.HOLD_STEP_BARS, duration_seconds=60) as lab:
        lab.start_node()
        lab.wait_running()
        lab.wait_node("the node's long at the venue", lambda: lab.futures_amount() > 0, timeout=30)
        held = lab.futures_amount()
        time.sleep(1.0)  # the node's heartbeat shows the position before the other client acts
        seq = lab.stack.last_seq()
        since = time.monotonic()
        answer = lab.other_client("POST", "/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=f"{held:f}",
                                  reduceOnly="true", newClientOrderId="other-client-close-1")  # the injected fault
        seen = fk.settle(lab, ("TcNodeExternalOrders",), since, seq, DETECT_TIMEOUT_S)
    alert, beat, foreign = seen.alert, seen.beat, seen.foreign
    detected = alert is not None
    observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after another client closed the node's position"
                if detected else f"no external-orders notification within {DETECT_TIMEOUT_S:g} s of another client closing the position")
    findings = [
        f"another client sold {held:f} BTCUSDT reduce-only at market (venue order {answer.get('orderId')}); the node "
        f"{fk.describe_foreign(foreign)}",
        f"after it the node's position was {(beat.get('position') or {}).get('side', '?')} {(beat.get('position') or {}).get('quantity', '?')} "
        f"(heartbeat) and at its stop {fk.describe_position(seen.node_position)}; the venue's {fk.describe_position(seen.venue_position)}",
        fk.describe_reconcile(seen.reconcile_code, seen.mismatches),
    ]
    evidence = {"closed_quantity": f"{held:f}", "other_client_order": {k: answer.get(k) for k in ("orderId", "clientOrderId", "status")},
                "external_orders": beat.get("external_orders"), "foreign_orders": foreign, "node_position": seen.node_position,
                "venue_position": seen.venue_position, "reconcile_exit_code": seen.reconcile_code, "mismatches": seen.mismatches}
    return observation(detected, observed, alert, evidence, findings)


DRILL = Drill("node_futures_external_close", "another client closes the node's USD-M position; the external-orders alert is delivered",
              "the node holds a long in BTCUSDT-PERP; another client of the same account sells it reduce-only at market on /fapi/v1/order",
              "TcNodeExternalOrders delivered (an order in the node's cache none of its strategies placed); what NautilusTrader made of "
              "the fill and whether node and venue agree after it (tc reconcile) is recorded", execute, kind="node")
