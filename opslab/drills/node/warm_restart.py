"""node_warm_restart: the node runs with a cache database (NautilusTrader's CacheConfig on the lab's Redis,
127.0.0.1), is SIGKILLed holding a resting order and a position, and restarts with the database kept
(nautilus_trader#3550, #5023, #3176, #4736, #3081). Three truths are compared after the restart: the node
(its cache as it runs, and its books at stop), its cache database (NautilusTrader's indexes in Redis) and
the venue (open orders, trades, balances). `tc run node` records the comparison in node/cache_db.json; a
disagreement is exported and must be delivered as TcNodeCacheDbDisagreement."""

from __future__ import annotations

import signal
import time
from typing import Any

from opslab import cachedb
from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.kit import NodeLab, observation

ALERTS = ("TcNodeCacheDbDisagreement",)


def execute(ctx: Context) -> Observation:
    return warm_restart(ctx, "node-warm-restart", flush_on_start=False, venue_moves=False)


def warm_restart(ctx: Context, run_id: str, flush_on_start: bool, venue_moves: bool) -> Observation:
    """The warm restart, optionally with flush_on_start, optionally with the venue filling the resting order while the node is down."""
    with NodeLab(ctx, run_id, speed=300, cache_database={"flush_on_start": flush_on_start}) as lab:  # 5 bars/s
        lab.start_node()
        lab.wait_running()
        # the premise: killed holding both, in the venue AND in the cache database (the node writes its position a moment after
        # the fill; under load a kill before that write left the database with the order only)
        lab.wait_node("a fill and a resting order at the venue, the order and the position in the cache database",
                      lambda: lab.venue_state()["trades"] and lab.venue_open_orders() and _held_in_db(lab.cache_db()), timeout=30)
        at_kill = {"venue_open_orders": sorted(o["clientOrderId"] for o in lab.venue_open_orders()),
                   "venue_trades": len(lab.venue_state()["trades"])}
        lab.node.send_signal(signal.SIGKILL)  # the injected fault: the node dies holding both; its Redis keeps running
        lab.node.wait()
        at_kill["cache_db"] = lab.cache_db()
        moved: list[str] = []
        if venue_moves:  # while it is down, the venue fills the resting order
            ids = lab.fill_resting()
            moved = sorted(o["clientOrderId"] for o in lab.venue_state()["orders"] if o["orderId"] in ids)
        seq = lab.stack.last_seq()
        lab.start_node()  # same run, same spec, same Redis: the warm restart
        t0 = time.monotonic()
        lab.wait_running()
        running_in = round(time.monotonic() - t0, 3)
        time.sleep(2.0)
        running = {"heartbeat": _held(lab.heartbeat() or {}), "cache_db": lab.cache_db(),
                   "venue_open_orders": sorted(o["clientOrderId"] for o in lab.venue_open_orders())}
        stop_at = time.monotonic()  # the comparison is written as the node stops
        lab.stop_node()
        alert = lab.detect(ALERTS, t0, timeout=30, after_seq=seq)
        record = lab.output("node_cache_db")
        positions = [{k: p.get(k) for k in ("position_id", "side", "quantity", "is_open")} for p in lab.output("positions").get("positions", [])]
        events = [e for e in lab.events() if e["event"] == "node_reconciled"]
        life = lab.lifecycle() or {}
    comparison = record.get("comparison") or {}
    disagree = sorted(name for name, item in comparison.items() if not item.get("agree"))
    reconciled = events[-1]["data"] if events else {}
    detected = alert is not None
    if detected:
        observed = (f"{alert['alertname']} delivered {alert['seconds']:.1f} s after the restart ("
                    f"{alert['seconds'] - (stop_at - t0):.1f} s after the restarted node was asked to stop and recorded the comparison): "
                    f"node, cache database and venue disagree on {', '.join(disagree) or 'nothing'}")
    else:
        observed = (f"no {ALERTS[0]} delivered within 30 s; node, cache database and venue "
                    f"{'disagree on ' + ', '.join(disagree) if disagree else 'agree'} after the restart")
    findings = _findings(at_kill, reconciled, running, comparison, moved, flush_on_start, positions)
    evidence = {"at_kill": {**at_kill, "cache_db": _brief(at_kill["cache_db"])}, "filled_while_down": moved,
                "seconds_to_running_after_restart": running_in, "seconds_to_stop_request_after_restart": round(stop_at - t0, 3),
                "reloaded": reconciled.get("loaded_from_cache_db"),
                "after_reconciliation": reconciled.get("after_reconciliation"),
                "running_after_restart": {**running, "cache_db": _brief(running["cache_db"])},
                "comparison": comparison, "disagree": disagree, "cache_db_before": record.get("before"), "cache_db_after": record.get("after"),
                "node_positions_at_stop": positions, "lifecycle": life.get("state")}
    return observation(detected, observed, alert, evidence, findings)


def _held(beat: dict[str, Any]) -> dict[str, Any]:
    return {"open_orders": beat.get("open_orders"), "position": beat.get("position")}


def _brief(db: dict[str, Any]) -> dict[str, Any]:
    return {k: db[k] for k in ("keys", "orders_open", "positions_open", "accounts")}


def _held_in_db(db: dict[str, Any]) -> bool:
    return bool(db["orders_open"] and db["positions_open"])


def _findings(at_kill: dict[str, Any], reconciled: dict[str, Any], running: dict[str, Any], comparison: dict[str, Any],
              moved: list[str], flush: bool, positions: list[dict[str, Any]]) -> list[str]:
    loaded, after = reconciled.get("loaded_from_cache_db") or {}, reconciled.get("after_reconciliation") or {}
    db = at_kill["cache_db"]
    lines = [f"at the SIGKILL the venue had {len(at_kill['venue_open_orders'])} resting order(s) ({', '.join(at_kill['venue_open_orders'])}) "
             f"and {at_kill['venue_trades']} trade(s); the node's cache database held {db['keys']} keys: open orders {db['orders_open']}, "
             f"open positions {db['positions_open']}",
             f"flush_on_start {str(flush).lower()}: NautilusTrader loaded {loaded or 'nothing'} from the database as the node was built, "
             f"and held {after or '?'} after its startup reconciliation"]
    if moved:
        lines.append(f"while the node was down the venue filled {', '.join(moved)}")
    lines.append("the restarted node's positions at its stop: " + "; ".join(
        f"{p['position_id']} {p['side']} {p['quantity']} {'open' if p['is_open'] else 'closed'}" for p in positions) if positions else
        "the restarted node held no position at its stop")
    odd = [m for m in running["cache_db"]["orders_open"] + running["cache_db"]["positions_open"] if m.startswith("<not an id")]
    if odd:
        lines.append(f"the cache database's open indexes held {len(odd)} member(s) that are no id ({odd[0]}): NautilusTrader wrote a "
                     "serialized event where an id belongs")
    for name, item in comparison.items():
        lines.append(f"{name}: node {item.get('node')}, cache database {item.get('cache_db')}, venue {item.get('venue')}: "
                     f"{'agree' if item.get('agree') else 'DISAGREE'}")
    lines.append(f"2 s after the restart, running: node heartbeat {running['heartbeat']}, cache database open orders "
                 f"{running['cache_db']['orders_open']} / open positions {running['cache_db']['positions_open']}, venue open orders "
                 f"{running['venue_open_orders']}")
    return lines


DRILL = Drill("node_warm_restart", "a node with a cache database is killed holding an order and a position and restarts warm",
              "SIGKILL to the node (cache database on the lab's Redis) holding a resting order and a position; restart with the database kept",
              "node, cache database and venue agree after the restart, or their disagreement is delivered as TcNodeCacheDbDisagreement",
              execute, kind="node", requires=cachedb.missing)
