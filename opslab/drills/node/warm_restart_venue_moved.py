"""node_warm_restart_venue_moved: node_warm_restart, and while the node is down the venue fills its resting
order (POST /admin/fill): the cache database the node reloads is stale. The same three truths are compared
after the restart; a disagreement must be delivered as TcNodeCacheDbDisagreement."""

from __future__ import annotations

from opslab import cachedb
from opslab.drills.base import Context, Drill, Observation
from opslab.drills.node.warm_restart import ALERTS, warm_restart


def execute(ctx: Context) -> Observation:
    return warm_restart(ctx, "node-warm-restart-venue-moved", flush_on_start=False, venue_moves=True)


DRILL = Drill("node_warm_restart_venue_moved", "node_warm_restart after the venue filled the resting order while the node was down",
              "SIGKILL to the node (cache database on the lab's Redis) holding a resting order and a position; the venue fills the order "
              "while it is down; restart with the database kept",
              f"node, cache database and venue agree after the restart, or their disagreement is delivered as {ALERTS[0]}",
              execute, kind="node", requires=cachedb.missing)
