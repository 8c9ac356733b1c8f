"""node_warm_restart_flush: node_warm_restart with CacheConfig.flush_on_start: the restarted node empties its
cache database as it starts and rebuilds its state from the venue alone (startup reconciliation). The same
three truths are compared after the restart; a disagreement must be delivered as TcNodeCacheDbDisagreement."""

from __future__ import annotations

from opslab import cachedb
from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.warm_restart import ALERTS, warm_restart


def execute(ctx: Context) -> Observation:
    return warm_restart(ctx, "node-warm-restart-flush", flush_on_start=True, venue_moves=False)


DRILL = Drill("node_warm_restart_flush", "node_warm_restart with flush_on_start: the restarted node empties its cache database first",
              "SIGKILL to the node (cache database on the lab's Redis, flush_on_start true) holding a resting order and a position; restart",
              f"node, cache database and venue agree after the restart, or their disagreement is delivered as {ALERTS[0]}",
              execute, kind="node", requires=cachedb.missing)
