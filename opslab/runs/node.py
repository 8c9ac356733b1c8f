"""`tc run node`: a live paper node against the lab's Binance-compatible venue on 127.0.0.1.

Preflight (nothing NautilusTrader is imported yet): the spec is engine.kind node, both venue URLs
pass the loopback rules, the API key and secret are set in the env names the spec's
connectivity_readiness declares (values are never written anywhere), the venue answers (GET
/api/v3/ping on the HTTP URL, a TCP connect to the WebSocket URL, a couple of seconds each, else exit 2
with nothing written; preflight.venue_reachable), the kill switch is released (else exit 3, journaled
node_blocked). The node registers in state/nodes/ (opslab/nodes.py: the
kill switch's wake) for as long as it runs. Then engine/live.py runs the TradingNode until its bound,
a signal or a fatal error. Afterwards the run holds the node's orders/fills/positions/final_state
(observed side), NautilusTrader's own reports (node/reports/*.csv), the venue's record of the same
account (venue_record.json, the expected side of `tc reconcile`), heartbeats, lifecycle and the
node's log (node/node*.log, size-bounded by NautilusTrader's file rotation).

All run-folder writes go through NodeRun (one small class), so the run layer can change underneath.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

from opslab import cachedb, clock, contracts, fs, journal, market, nodes, runs, safety
from opslab import urls
from opslab.datasets import resolve, store
from opslab.runs import outputs, preflight
from opslab.runs import lifecycle
from opslab.runs.lifecycle import Lifecycle
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.spec import RunSpec, credentials

MAX_HEARTBEAT_LINES = 5_000
MARKET_DATA_STALE_DEFAULT_S = 30  # engine.node.market_data_stale_seconds when the spec leaves it out


class NodeRun:
    """The node's only contact with its run: an open run object (runs.open), plus the heartbeat log."""

    def __init__(self, run: runs.Run) -> None:
        self.run, self.run_id, self.folder = run, run.run_id, run.folder
        self.heartbeats = 0

    def event(self, name: str, data: dict[str, Any]) -> None:
        self.run.event(name, data)

    def patch(self, **fields: Any) -> None:
        self.run.meta(**fields)

    def record_safety(self) -> None:
        self.run.record_safety()

    def read(self, name: str) -> Any:
        return self.run.read(name)

    def write(self, name: str, doc: Any) -> None:
        self.run.write(name, doc)

    def write_report(self, name: str, payload: bytes) -> None:
        fs.write_atomic(contracts.artifact("node_reports").at(self.folder, name), payload)

    def heartbeat(self, fields: dict[str, Any]) -> None:
        """Append one heartbeat to the chained history (bounded) and keep the latest in heartbeat.json."""
        record = {"run_id": self.run_id, **fields}
        if self.heartbeats < MAX_HEARTBEAT_LINES:
            record = journal.append_record(self.folder / contracts.artifact("node_heartbeat").history, record)
            self.heartbeats += 1
        else:
            record = {"schema_version": SCHEMA_VERSION, "seq": self.heartbeats, "ts": clock.now_iso(), "prev": "0" * 64, **record, "hash": "0" * 64}
        self.run.write("node_heartbeat", record)

    def outputs(self, state: dict[str, Any], counters: dict[str, int]) -> None:
        outputs.write_outputs(self.run, state, counters)

    def log_dir(self) -> Path:
        path = self.folder / contracts.artifact("node_lifecycle").path.rsplit("/", 1)[0]
        fs.mkdirs(path)
        return path


def _settings_inputs(spec: RunSpec, http_url: str | None, ws_url: str | None, cache_db_url: str | None = None) -> dict[str, Any]:
    preflight.check_kind(spec, "node")
    node = dict(spec.data["engine"]["node"])
    overrides = {"venue_http_url": http_url, "venue_ws_url": ws_url}
    sources = {}
    for field, scheme in (("venue_http_url", "http"), ("venue_ws_url", "ws")):
        value = overrides[field] or node[field]
        where = {"venue_http_url": "--venue-url", "venue_ws_url": "--venue-ws-url"}[field] if overrides[field] else f"{spec.path}: /engine/node/{field}"
        sources[scheme] = where
        if not value.startswith(scheme + "://") or value.endswith("/") or "?" in value:
            raise InputError(f"{where}: {value!r}: expected {scheme}://127.0.0.1, localhost or [::1] with a port, no path")
        try:
            parsed = urls.parse("http" + value[len(scheme):])
        except InputError as exc:
            raise InputError(f"{where}: {str(exc).removeprefix('--url: ')}") from None
        if parsed.path != "/":
            raise InputError(f"{where}: {value!r}: expected a base URL without a path")
        node[field] = value
    key, secret = credentials(spec)
    cache_db = _cache_db_inputs(spec, node, cache_db_url)
    return {"node": node, "api_key": key, "api_secret": secret, "sources": sources, "cache_db": cache_db}


def _interval(spec: RunSpec) -> str:
    """The bars the venue replays from the spec's dataset (an imported one's manifest says; a synthetic one is 1m): the bar
    type the node subscribes to. USD-M Futures follows a replay of one-minute bars only (its klines and funding count
    them): InputError otherwise. A missing imported dataset is left to the run's own dataset check (exit 2 naming it)."""
    block = spec.data["dataset"]
    folder = store.dataset_dir(block["id"]) if block["kind"] == "imported" else None
    manifest = store.load_manifest(folder) if folder is not None and fs.exists(store.manifest_path(folder)) else {}
    interval = manifest.get("interval", market.INTERVAL)
    if market.account_type(spec.data) == market.USDT_FUTURES and interval != market.INTERVAL:
        raise InputError(f"{spec.path}: /engine/node/account_type: usdt_futures follows a replay of {market.INTERVAL} bars; "
                         f"dataset {spec.data['dataset'].get('id')} holds {interval} bars")
    return interval


def _cache_db_inputs(spec: RunSpec, node: dict[str, Any], url: str | None) -> dict[str, Any] | None:
    """The spec's cache database and where its Redis is: --cache-db-url (one already running on 127.0.0.1), else
    one tc starts (redis-server must be installed: exit 2 naming the package, nothing written)."""
    block = node.get("cache_database")
    if block is None:
        if url is not None:
            raise InputError(f"--cache-db-url: {url!r}: {spec.path}: /engine/node/cache_database is not set (the node has no cache database)")
        return None
    db = {"flush_on_start": bool(block.get("flush_on_start", False)), "buffer_interval_ms": block.get("buffer_interval_ms")}
    if url is not None:
        db["host"], db["port"] = cachedb.parse_url(url, "--cache-db-url")
        try:  # seconds, before anything of the run is written, as the venue's check
            answer = cachedb.command(db["host"], db["port"], "PING", timeout=2.0)
        except (OSError, cachedb.RedisError) as exc:
            answer = f"{type(exc).__name__}: {exc}"
        if answer != "PONG":
            raise InputError(f"--cache-db-url: {url}: no Redis answers PING ({str(answer)[:120]})")
        db["managed"] = False
        return db
    try:
        cachedb.find_server()
    except cachedb.Unavailable as exc:
        raise InputError(f"{spec.path}: /engine/node/cache_database: {exc}") from None
    db["managed"] = True
    return db


def run_node(spec: RunSpec, gate: Callable[[], "str | None"], http_url: str | None = None, ws_url: str | None = None,
             check: bool = False, cache_db_url: str | None = None) -> Result:
    """Run the spec's live paper node to its bound; ok when the run already stopped. HTTP_URL/WS_URL
    override the spec's venue URLs (where the venue listens is deployment, not the experiment); CACHE_DB_URL
    names a Redis already running for the spec's cache database (else tc starts one)."""
    inputs = _settings_inputs(spec, http_url, ws_url, cache_db_url)
    node = inputs["node"]
    planned = lifecycle.plan(spec, "node_lifecycle", "node", f"the live node of {spec.run_id} against {node['venue_http_url']}")
    if check or planned.status == "ok":
        return planned
    inputs["interval"] = _interval(spec)
    resolve.quality_gate(spec)  # the venue replays this dataset: a failed or unverifiable record stops here (local, before the network)
    # A node the kill switch blocks needs no venue: it is recorded blocked (exit 3) below. A root not made yet has no
    # switch to engage (the gate fails closed on it, and the run creates the root before it asks again).
    if not (fs.root().is_dir() and gate() is not None):
        # Seconds, not the node's connect timeout, and before anything of the run is written: exit 2 naming the URL.
        preflight.venue_reachable(node["venue_http_url"], node["venue_ws_url"], inputs["sources"])
    from opslab.engine import strategies  # preflight passed: importing the strategy (and NautilusTrader) is due now

    strategies.check(spec)  # exit 2 naming the module and the reason, before anything is written
    with runs.open(spec, dataset=runs.dataset_for(spec)) as opened:  # the venue replays the same dataset; the run links it
        run = NodeRun(opened)
        previous = run.read("node_lifecycle")
        if lifecycle.stopped(previous):  # another tc stopped it between the plan and the lock
            return lifecycle.already(spec, run.folder, previous, "node")
        life = Lifecycle(run, "node_lifecycle", "node", {
            "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "state": "new", "stop_reason": None,
            "venue_http_url": node["venue_http_url"], "venue_ws_url": node["venue_ws_url"],
            "bounds": {"duration_seconds": node["duration_seconds"], "bars": node["bars"], "heartbeat_seconds": node["heartbeat_seconds"],
                       "market_data_stale_seconds": node.get("market_data_stale_seconds", MARKET_DATA_STALE_DEFAULT_S)},
            "timings": {"connected": None, "running": None, "first_fill": None, "stopped": None},
            "halts": 0, "cancelled_at_halt": [], "transitions": (previous or {}).get("transitions", []),
            **({"auto_halt": {"bounds": node["auto_halt"], "auto_halts": 0, "changes": [], "unrecorded": []}} if node.get("auto_halt") else {}),
        }, stop_states=("stopped", "failed", "blocked"))
        run.record_safety()
        reason = gate()
        if reason:
            life.to("blocked", f"kill_switch: {reason}")
            run.patch(status="blocked")
            return Result("blocked", f"run {spec.run_id}: node blocked before start by the kill switch: {reason}", [str(run.folder)],
                          {"run_id": spec.run_id, "gate": "kill_switch", "reason": reason}, exit_code=EXIT_CODES["safety"])
        life.to("starting")
        run.patch(status="running")
        opened.flush()  # a node killed from outside shows `running` (and its heartbeats stop)
        with contextlib.ExitStack() as stack:  # the cache database (when the spec has one) lives until the run is recorded
            try:
                cache_db = stack.enter_context(CacheDatabase(run, inputs["cache_db"]))
                # Registered before the node's own start-up check of the switch (engine/live.py): an engage either
                # finds the switch engaged at that check or finds this node in the registry and wakes it.
                with nodes.Registration(spec.run_id) as registration:
                    state, hooks = _drive(spec, run, life, inputs, gate, registration, cache_db.settings())
            except Exception as exc:
                _tidy_logs(run)  # also when it failed: the run is sealed with its logs
                life.to("failed", f"{type(exc).__name__}: {exc}"[:500])
                run.patch(status="failed")
                raise
            return _finish(spec, run, life, inputs, state, hooks, cache_db)


class CacheDatabase:
    """The node's cache database for one start of the node: the Redis tc starts (files in node/cache_db/, tied to
    this process so it never outlives it) or the one --cache-db-url names; its key counts before and after
    (node/cache_db.json). Stopped on every way out of the `with`."""

    def __init__(self, run: NodeRun, db: dict[str, Any] | None) -> None:
        self.run, self.db = run, db
        self.server: cachedb.RedisServer | None = None
        self.doc: dict[str, Any] | None = None

    def __enter__(self) -> "CacheDatabase":
        if self.db is None:
            return self
        if self.db["managed"]:
            folder = self.run.folder / contracts.artifact("node_cache_db_files").path.rsplit("/", 1)[0]
            self.server = cachedb.RedisServer(folder, tied=True)
            self.server.start()
            self.db["host"], self.db["port"] = self.server.host, self.server.port
        try:
            self.doc = {"schema_version": SCHEMA_VERSION, "run_id": self.run.run_id,
                        "database": {"type": "redis", "url": f"redis://{self.db['host']}:{self.db['port']}", "managed": self.db["managed"],
                                     "flush_on_start": self.db["flush_on_start"], "buffer_interval_ms": self.db["buffer_interval_ms"]},
                        "before": self._snapshot(), "after": None}
            self.run.write("node_cache_db", self.doc)
        except BaseException:
            self._stop()
            raise
        return self

    def compare(self, node_state: dict[str, Any], venue_record: dict[str, Any], hooks: Any) -> None:
        """The three truths at the node's stop, side by side (node/cache_db.json comparison): the node's books, its
        cache database (NautilusTrader's indexes and position events in Redis), the venue's record; whether each agrees."""
        if self.doc is None or self.db is None:
            return
        try:
            held = cachedb.state(self.db["host"], self.db["port"])
        except (OSError, cachedb.RedisError) as err:
            self.run.event("node_cache_db_unreadable", {"error": f"{type(err).__name__}: {err}"[:300]})
            return
        self.doc["loaded"], self.doc["reconciled"] = hooks.loaded, hooks.reconciled
        self.doc["comparison"] = cachedb.compare(node_state, held, venue_record)
        self.run.write("node_cache_db", self.doc)

    def settings(self) -> dict[str, Any] | None:
        return None if self.db is None else {k: self.db[k] for k in ("host", "port", "flush_on_start", "buffer_interval_ms")}

    def _snapshot(self) -> dict[str, Any]:
        assert self.db is not None
        counts = cachedb.key_counts(self.db["host"], self.db["port"])
        return {"taken_at": clock.now_iso(), "keys": sum(counts.values()), "key_counts": counts}

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.doc is not None:
                try:
                    self.doc["after"] = self._snapshot()
                    self.run.write("node_cache_db", self.doc)
                except (OSError, cachedb.RedisError) as err:
                    self.run.event("node_cache_db_unreadable", {"error": f"{type(err).__name__}: {err}"[:300]})
        finally:
            self._stop()

    def _stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _drive(spec: RunSpec, run: NodeRun, life: Lifecycle, inputs: dict[str, Any], gate: Callable[[], "str | None"],
           registration: nodes.Registration, cache_db: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    from opslab.engine import live  # NautilusTrader is imported here, when a node runs

    node = inputs["node"]
    settings = live.Settings(spec=spec.data, run_spec=spec, run_id=spec.run_id, log_dir=run.log_dir(), api_key=inputs["api_key"],
                             api_secret=inputs["api_secret"], http_url=node["venue_http_url"], ws_url=node["venue_ws_url"],
                             duration_s=node["duration_seconds"], bars=node["bars"], heartbeat_s=node["heartbeat_seconds"],
                             connect_timeout_s=node["connect_timeout_seconds"], open_check_s=node.get("open_check_seconds"),
                             open_check_delay_s=node.get("open_check_delay_seconds"), cache_db=cache_db, auto_halt=node.get("auto_halt"),
                             account_type=market.account_type(spec.data), instrument_id=market.instrument_id(spec.data),
                             interval=inputs["interval"])

    def event(state: str, data: dict[str, Any]) -> None:
        _counts(life, hooks)
        with_reason = state in ("halted", "stopping", "reducing") or data.get("resumed")
        life.to(state, data.get("reason") if with_reason else None, event="node_resumed" if data.get("resumed") else None,
                **{k: v for k, v in data.items() if k != "reason"})

    def auto_record(action: str, reason: str) -> None:  # the node's soft halt, into the kill switch's history (its own thread)
        safety.record_auto(action, reason, spec.run_id)

    hooks = live.Hooks(heartbeat=run.heartbeat, event=event, gate=gate, registration=registration,
                       auto_record=auto_record if node.get("auto_halt") else None)
    return live.run(settings, hooks), hooks


def _counts(life: Lifecycle, hooks: Any) -> None:
    """The lifecycle's halt counts, timings and soft-halt record as the hooks hold them now."""
    life.doc["halts"], life.doc["cancelled_at_halt"] = hooks.halts, list(hooks.cancelled)
    life.doc["timings"] = dict(hooks.timings)
    if "auto_halt" in life.doc:
        life.doc["auto_halt"].update(auto_halts=hooks.auto_halts, changes=list(hooks.auto_changes), unrecorded=list(hooks.auto_unrecorded))


def _tidy_logs(run: NodeRun) -> None:
    """NautilusTrader puts a ":" in its log files' names; a run's file names keep to [A-Za-z0-9_.-]."""
    for log in sorted(run.log_dir().glob(contracts.artifact("node_log").path.rsplit("/", 1)[1])):
        if ":" in log.name:
            log.rename(log.with_name(log.name.replace(":", "-")))


def _finish(spec: RunSpec, run: NodeRun, life: Lifecycle, inputs: dict[str, Any], state: dict[str, Any], hooks: Any,
            cache_db: "CacheDatabase") -> Result:
    from opslab.venue.client import RECORD_TIMEOUT_S, RecordError, VenueClient

    node = inputs["node"]
    _tidy_logs(run)
    reports = state.pop("nautilus_reports")
    first_fill = state.pop("first_fill_seconds")
    for name, payload in reports.items():
        run.write_report(name, payload)
    _counts(life, hooks)
    life.doc["timings"]["first_fill"] = first_fill
    venue_counts: dict[str, int] = {}
    try:
        client = VenueClient(node["venue_http_url"], RECORD_TIMEOUT_S, api_key=inputs["api_key"], api_secret=inputs["api_secret"],
                             symbol=spec.data["instrument"])
        futures = market.account_type(spec.data) == market.USDT_FUTURES
        venue_record = client.futures_account_snapshot(spec.run_id) if futures else client.account_snapshot(spec.run_id)
        run.write("venue_record", venue_record)
        cache_db.compare(state["final_state"], venue_record, hooks)
        venue_counts = client.futures_account_counts() if futures else client.account_counts()
        venue_note = f"venue record {contracts.artifact('venue_record').path}"
    except (RecordError, ValueError, KeyError) as exc:
        venue_note = f"venue record unavailable ({exc})"
    life.doc["venue_counts"] = venue_counts
    life.doc["heartbeats"] = run.heartbeats
    run.outputs(state, {})
    fatal = (hooks.stop_reason or "").startswith("fatal")
    final = "failed" if fatal else "stopped"
    life.to(final, hooks.stop_reason)
    run.patch(status=final, engine_summary=outputs.engine_summary(state, state["counters"]["bars_processed"], "node"))
    c = state["counters"]
    summary = (f"run {spec.run_id}: node {final} ({hooks.stop_reason}) after {c['bars_processed']} bars: {c['orders_submitted']} orders, "
               f"{c['fills']} fills, {run.heartbeats} heartbeats, {hooks.halts} halt(s); first fill "
               f"{first_fill if first_fill is not None else '-'} s after start; {venue_note}")
    data = {"run_id": spec.run_id, "run_dir": str(run.folder), "lifecycle": life.doc, "counters": c, "first_fill_seconds": first_fill}
    if fatal:
        return Result("failed", summary, [str(run.folder)], data, exit_code=EXIT_CODES["unexpected"])
    return Result("changed", summary, [str(run.folder)], data)

