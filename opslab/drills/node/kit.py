"""The world of one node drill, all inside its sandbox and on 127.0.0.1: the alerting path
(opslab/drills/node/stack.py: receiver, exporter, Prometheus, Alertmanager), the Binance-compatible venue
(`tc venue serve --spec`, faults switched over its loopback admin endpoint) and the real node
(`tc run node`, a NautilusTrader TradingNode with the real Binance adapter), each its own process.

A node drill passes only when the lab DETECTED the incident: the alert it names was delivered by
Alertmanager to `tc alerts receive`. Detection off starts Prometheus without the lab's alert rules,
so nothing can be delivered and the drill must fail. Credentials are random per drill and live only
in the child processes' environment (the spec names the variables, never the values).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from opslab import cachedb, clock, contracts, journal, market, runs, safety
from opslab.contracts import SCHEMA_VERSION
from opslab.drills.node import stack as alert_stack
from opslab.drills.base import Context, Observation
from opslab.venue import profiles
from opslab.venue.client import VenueClient

KEY_ENV, SECRET_ENV = "TC_DRILL_API_KEY", "TC_DRILL_API_SECRET"
FUTURES_SMOKE = "opslab.engine.smoke_futures"  # the futures drills' strategy (scenario ops_smoke_futures), named with its config
FUTURES_TRADE_SIZE = "0.010"
MAX_LOG_BYTES = 4 << 20


def node_spec(run_id: str, futures_step_bars: int | None = None, **node: Any) -> dict[str, Any]:
    """A RunSpec for a drill's node: the demo strategy (a resting limit buy, market round trips every
    60 bars), fast heartbeats, a 3 s market-data staleness bound; NODE overrides engine.node fields. With
    FUTURES_STEP_BARS the node trades the USD-M perpetual with the futures smoke strategy, a step every that many bars
    (a step count beyond the run's bars: it opens a long and rests its limit buy on the first bar, then holds them)."""
    strategy: dict[str, Any] = {"name": "drill", "version": "1"}
    if futures_step_bars is not None:
        node = {"account_type": market.USDT_FUTURES, **node}
        strategy.update(strategy_path=f"{FUTURES_SMOKE}:FuturesSmokeStrategy", config_path=f"{FUTURES_SMOKE}:FuturesSmokeConfig",
                        config={"strategy_id": "SMOKE-001", "step_bars": futures_step_bars, "trade_size": FUTURES_TRADE_SIZE})
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "description": "node drill",
        "scenario": {"name": "ops_smoke_futures" if futures_step_bars is not None else "ops_smoke_demo", "version": "1.0.0"},
        "strategy": strategy,
        "instrument": market.SYMBOL, "venue": market.VENUE,
        "dataset": {"kind": "synthetic", "seed": 42, "start": "2024-01-01T00:00:00Z", "bars": 1440},
        "engine": {"kind": "node", "node": {"venue_http_url": "http://127.0.0.1:1", "venue_ws_url": "ws://127.0.0.1:2",
                                            "duration_seconds": 40, "bars": None, "heartbeat_seconds": 0.5,
                                            "market_data_stale_seconds": 3, "connect_timeout_seconds": 10, **node}},
        "connectivity_readiness": {"venue": market.VENUE, "placeholders": [{"role": "api_key", "env": KEY_ENV},
                                                                        {"role": "api_secret", "env": SECRET_ENV}]},
    }


def _tail(path: Path, limit: int = MAX_LOG_BYTES) -> bytes:
    """The last LIMIT bytes of PATH (b"" when it cannot be read): every read here is bounded."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - limit))
            return fh.read(limit)
    except OSError:
        return b""


def _loopback(url: str) -> str:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: a drill talks to 127.0.0.1 only")
    return url


class NodeLab:
    """`with NodeLab(ctx, "node-crash") as lab:` the stack and the venue run; lab.start_node() starts the node."""

    def __init__(self, ctx: Context, run_id: str, speed: float = 600, venue_faults: tuple[str, ...] = (),
                 futures_step_bars: int | None = None, replay_now: bool = False, **node: Any) -> None:
        self.ctx, self.run_id, self.speed, self.venue_faults = ctx, run_id, speed, venue_faults
        self.futures, self.replay_now = futures_step_bars is not None, replay_now
        # a spec with a cache database: one Redis for the whole drill (it outlives every node start, as a deployed one does)
        self.redis = cachedb.RedisServer(ctx.sandbox / "redis") if "cache_database" in node else None
        self.spec_path = ctx.spec(run_id, node_spec(run_id, futures_step_bars, **node))
        self.root = ctx.sandbox / "artifacts"
        self.run_dir = self.root / "runs" / run_id
        self.creds = {KEY_ENV: "drill-key-" + secrets.token_hex(8), SECRET_ENV: "drill-secret-" + secrets.token_hex(16)}
        self.stack = alert_stack.AlertStack(ctx.sandbox / "stack", self.root, rules=ctx.detection)
        self.venue: subprocess.Popen | None = None
        self.node: subprocess.Popen | None = None
        self.urls: dict[str, str] = {}
        self.started = 0.0
        self.node_starts = 0

    # --- the parts ------------------------------------------------------------------------
    def __enter__(self) -> "NodeLab":
        (self.ctx.sandbox / "stack").mkdir(parents=True, exist_ok=True)
        prepared = self.ctx.tc("data", "prepare", "--spec", str(self.spec_path))
        if prepared.code != 0:
            raise RuntimeError(f"tc data prepare exited {prepared.code}: {prepared.err[-500:]}")
        self.stack.start()
        try:
            if self.redis is not None:
                self.redis.start()
            self.start_venue()
        except BaseException:
            self.stack.close()
            if self.redis is not None:
                self.redis.stop()
            raise
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: Any) -> None:
        for proc in (self.node, self.venue):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        try:
            self.stack.close()
        finally:
            if self.redis is not None:
                self.redis.stop()

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = (self.ctx.sandbox / f"{name}.out").open("ab")
        err = (self.ctx.sandbox / f"{name}.err").open("ab")
        with out, err:
            return subprocess.Popen([sys.executable, "-m", "opslab", *args], env=self.ctx.env(**self.creds), stdout=out, stderr=err)

    def start_venue(self) -> None:
        args = ["venue", "serve", "--spec", str(self.spec_path), "--speed", str(self.speed), "--ping-interval", "1", "--json",
                "--binance-api", profiles.for_nautilus(runs.versions()["nautilus_trader"])]  # the Binance the node's NautilusTrader speaks
        for fault in self.venue_faults:
            args += ["--fault", fault]
        if self.replay_now:  # prices before any node subscribes (a position opened before the node starts)
            args.append("--replay-now")
        self.venue = self._spawn("venue", args)
        out = self.ctx.sandbox / "venue.out"

        def listening() -> dict[str, Any] | None:
            if self.venue is not None and self.venue.poll() is not None:
                raise RuntimeError(f"the venue exited {self.venue.returncode}: {self._tail('venue.err')}")
            first = out.read_bytes().split(b"\n", 1)
            return json.loads(first[0]) if len(first) == 2 else None

        line = alert_stack.wait("the venue to listen", listening, timeout=30)
        self.urls = {"http": _loopback(line["url"]), "ws": line["ws_url"], "futures_ws": line["futures_ws_url"]}

    def start_node(self) -> subprocess.Popen:
        """`tc run node` against the venue (a restart when the run exists: same run, same spec)."""
        self.node_starts += 1
        db = ["--cache-db-url", self.redis.url] if self.redis is not None else []
        ws = self.urls["futures_ws" if self.futures else "ws"]
        self.node = self._spawn(f"node-{self.node_starts}", ["run", "node", "--spec", str(self.spec_path), "--venue-url", self.urls["http"],
                                                            "--venue-ws-url", ws, "--json", *db])
        return self.node

    def stop_node(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the node and wait for it; its exit code (None when it had to be killed)."""
        if self.node is None or self.node.poll() is not None:
            return None if self.node is None else self.node.returncode
        self.node.send_signal(sig)
        try:
            return self.node.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.node.kill()
            self.node.wait()
            return None

    def _tail(self, name: str) -> str:
        return _tail(self.ctx.sandbox / name, 800).decode("utf-8", "replace")

    # --- what the parts say ---------------------------------------------------------------
    def output(self, name: str) -> dict[str, Any]:
        """The run artifact NAME (orders, fills, positions, reconciliation, ...) as written, or {}."""
        return self._json(contracts.artifact(name).path) or {}

    def _json(self, relative: str) -> Any:
        try:
            return json.loads(_tail(self.run_dir / relative) or b"null")
        except ValueError:
            return None

    def lifecycle(self) -> dict[str, Any] | None:
        return self._json(contracts.artifact("node_lifecycle").path)

    def heartbeat(self) -> dict[str, Any] | None:
        return self._json(contracts.artifact("node_heartbeat").path)

    def heartbeats(self) -> list[dict[str, Any]]:
        raw = _tail(self.run_dir / contracts.artifact("node_heartbeat").history)
        return [json.loads(line) for line in raw.splitlines() if line.startswith(b"{")]

    def events(self) -> list[dict[str, Any]]:
        raw = _tail(self.run_dir / contracts.artifact("journal").path)
        return [json.loads(line) for line in raw.splitlines() if line.startswith(b"{")]

    def log_lines(self, pattern: str, limit: int = 5) -> list[str]:
        """Lines of the node's own log (node/node*.log) matching PATTERN, the first LIMIT. NautilusTrader
        writes its log file buffered: read it after the node stopped to see everything."""
        found: list[str] = []
        log_path = contracts.artifact("node_log").path  # node/node*.log
        for log in sorted((self.run_dir / log_path.rsplit("/", 1)[0]).glob(log_path.rsplit("/", 1)[1])):
            for line in _tail(log).decode("utf-8", "replace").splitlines():
                if re.search(pattern, line):
                    found.append(line[:300])
                    if len(found) >= limit:
                        return found
        return found

    def log_times(self, pattern: str) -> list[float]:
        """Unix times of the node's log lines matching PATTERN (each line starts with its RFC 3339 time)."""
        times = []
        for line in self.log_lines(pattern, limit=10_000):
            try:
                times.append(clock.epoch_seconds_fraction(line[:26] + "Z"))
            except ValueError:
                continue
        return times

    def wait_node(self, what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
        """Poll CHECK until truthy; RuntimeError when the node exits first or time runs out."""
        def step() -> Any:
            value = check()
            if not value and self.node is not None and self.node.poll() is not None:
                raise RuntimeError(f"the node exited {self.node.returncode} while waiting for {what}: {self._tail(f'node-{self.node_starts}.err')}")
            return value

        return alert_stack.wait(what, step, timeout=timeout)

    def wait_running(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until this start of the node runs (after a restart the lifecycle first still shows the last one)."""
        def running() -> Any:
            life = self.lifecycle() or {}
            starts = sum(t["state"] == "starting" for t in life.get("transitions", []))
            return life.get("state") == "running" and starts >= self.node_starts and self.heartbeat()

        return self.wait_node("the node to run", running, timeout)

    def soft_halts(self) -> dict[str, Any]:
        """The node's automatic soft halts (spec engine.node.auto_halt): each stream's stale and fresh changes from its lifecycle
        (with their Unix time), the auto_reduce and auto_release events of this run in the kill switch's history, and what
        `tc artifacts verify --all` said of that history with the rest (call it once the node stopped)."""
        block = (self.lifecycle() or {}).get("auto_halt") or {}
        changes = [{**c, "unix": clock.epoch_seconds_fraction(c["at"])} for c in block.get("changes", [])]
        history = [{k: e[k] for k in ("seq", "action", "reason")} for e in journal.read(safety.events_path(self.root))
                   if e["action"] in safety.AUTO and e.get("run_id") == self.run_id]
        verified = self.ctx.tc("artifacts", "verify", "--all")
        try:
            problems = [] if verified.code == 0 else [str(d)[:300] for d in verified.json().get("details", [])[:5]]
        except ValueError:
            problems = [verified.err[-300:]]
        return {"bounds": block.get("bounds"), "changes": changes, "history": history, "unrecorded": block.get("unrecorded", []),
                "verify_exit_code": verified.code, "verify_problems": problems}

    def cache_db(self) -> dict[str, Any]:
        """What the node's cache database holds now (opslab/cachedb.py: key counts, open orders and positions)."""
        assert self.redis is not None
        return cachedb.state(self.redis.host, self.redis.port)

    # --- the venue ------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.urls["http"] + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read(8 << 20))

    def faults(self, *names: str) -> float:
        """Switch the venue's faults to NAMES (none: clear them); the monotonic time it took effect."""
        if names:
            self._admin("POST", "/admin/faults", {"faults": list(names)})
        else:
            self._admin("DELETE", "/admin/faults")
        return time.monotonic()

    def fill_resting(self) -> list[int]:
        """Have the venue fill every resting order at its price (POST /admin/fill); their venue order ids."""
        return self._admin("POST", "/admin/fill", {})["filled"]

    def venue_state(self) -> dict[str, Any]:
        return self._admin("GET", "/admin/state")

    def futures_state(self) -> dict[str, Any]:
        """The venue's USD-M account (GET /admin/futures): position, wallet, orders, trades, funding payments."""
        return self._admin("GET", "/admin/futures")

    def futures_amount(self) -> Decimal:
        """The venue's signed position amount in the perpetual."""
        return Decimal(self.futures_state()["position"]["positionAmt"])

    def age_futures(self, hours: float) -> int:
        """Move the venue's USD-M records HOURS back in time (POST /admin/futures/age); how many rows moved."""
        return self._admin("POST", "/admin/futures/age", {"hours": hours})["moved"]

    def other_client(self, method: str, path: str, **params: Any) -> Any:
        """A signed request from another client of the same account (the drill's own credentials, as a second program of the
        operator's would hold them): the venue's answer."""
        client = VenueClient(self.urls["http"], 5.0, api_key=self.creds[KEY_ENV], api_secret=self.creds[SECRET_ENV])
        return client.signed(method, path, params)

    def nautilus_orders(self) -> list[dict[str, str]]:
        """NautilusTrader's own orders report of the run (node/reports/orders.csv: strategy ids and tags), read when it stopped."""
        text = _tail(self.run_dir / contracts.artifact("node_reports").path.replace("*", "orders")).decode("utf-8", "replace")
        return list(csv.DictReader(io.StringIO(text))) if text else []

    def venue_open_orders(self) -> list[dict[str, Any]]:
        return [o for o in self.venue_state()["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")]

    def venue_stats(self) -> dict[str, Any]:
        """The venue's flat request counts (served, throttled, banned, dropped, errors)."""
        return self._admin("GET", "/admin/faults").get("stats", {})

    def fills_lost(self) -> list[dict[str, Any]]:
        """The fills whose execution report the venue's fill_lost fault withheld (its recorded schedule, GET /admin/faults)."""
        return self._admin("GET", "/admin/faults").get("fills_lost", [])

    def fault_records(self, key: str) -> list[dict[str, Any]]:
        """What a venue fault recorded as it played out (GET /admin/faults): fills_lost, partial_fills, reports_duplicated."""
        return self._admin("GET", "/admin/faults").get(key, [])

    def venue_counters(self) -> dict[str, Any]:
        """The venue's statistics artifact (venue/<run_id>/stats.json: WebSocket, market-message counts)."""
        try:
            return json.loads(_tail(contracts.artifact("venue_stats").at(self.root, self.run_id)) or b"{}")
        except ValueError:
            return {}

    # --- detection ------------------------------------------------------------------------
    def detect(self, names: tuple[str, ...], since: float, timeout: float, after_seq: int = 0) -> dict[str, Any] | None:
        """Wait up to TIMEOUT for a firing notification of an alert in NAMES; what arrived (alert name,
        seconds from SINCE, the notification's sequence number and receive time), or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.stack.find_alert(names, "firing", after_seq)
            if found:
                line, alert = found
                return {"alertname": alert["labels"]["alertname"], "seconds": round(time.monotonic() - since, 3), "seq": line["seq"],
                        "received_at": line["ts"], "severity": alert["labels"].get("severity"),
                        "runbook_url": alert.get("annotations", {}).get("runbook_url")}
            time.sleep(0.1)
        return None


def soft_halt_times(halts: dict[str, Any], went_wall: float, back_wall: float | None = None) -> dict[str, Any]:
    """When the node reduced itself after WENT_WALL (the incident began; Unix time) and went back to ACTIVE after BACK_WALL (the
    incident ended; the reduction itself when None), in seconds, with the streams involved; None where it did not."""
    stale = [c for c in halts["changes"] if c["stale"] and c["unix"] >= went_wall]
    fresh = [c for c in halts["changes"] if not c["stale"] and stale and c["unix"] >= stale[0]["unix"]]
    reduced = round(stale[0]["unix"] - went_wall, 3) if stale else None
    released = round(fresh[-1]["unix"] - (back_wall if back_wall is not None else stale[0]["unix"]), 3) if fresh else None
    # the node decides on the stream's age, counted from its last event, which came before WENT_WALL: the reduction can
    # follow WENT_WALL by a little less than the bound, never with an age within it
    return {"reduced_after_seconds": reduced, "released_after_seconds": released, "streams_stale": sorted({c["stream"] for c in stale}),
            "age_at_reduce_seconds": stale[0].get("age_seconds") if stale else None,
            "auto_events": [h["action"] for h in halts["history"]], "history_verifies": halts["verify_exit_code"] == 0}


def soft_halt_finding(halts: dict[str, Any], times: dict[str, Any], went: str, back: str) -> str:
    """One line of what the node's automatic soft halt did: reduced after WENT (e.g. "updates stopped"), released after BACK."""
    bounds = ", ".join(f"{k.removesuffix('_seconds')} {v:g} s" for k, v in (halts["bounds"] or {}).items() if v is not None) or "off"
    if times["reduced_after_seconds"] is None:
        return f"its automatic soft halt ({bounds}) never moved it to REDUCING: no stream stayed stale past its bound"
    released = (f"back to ACTIVE {times['released_after_seconds']:g} s after {back}" if times["released_after_seconds"] is not None
                else "still REDUCING when it stopped (the stream was never fresh again)")
    verified = "verifies" if times["history_verifies"] else f"does NOT verify (tc artifacts verify exit {halts['verify_exit_code']})"
    return (f"its automatic soft halt ({bounds}) moved it to REDUCING {times['reduced_after_seconds']:g} s after {went} "
            f"(stale: {', '.join(times['streams_stale'])}), {released}; the kill switch's history holds the node's "
            f"{', '.join(times['auto_events']) or 'nothing'} and {verified}"
            + (f"; NOT recorded: {'; '.join(halts['unrecorded'])}" if halts["unrecorded"] else ""))


def observation(detected: bool, observed: str, alert: dict[str, Any] | None, evidence: dict[str, Any], findings: list[str]) -> Observation:
    """A node drill's outcome: time to detect is the alert's delivery in ms (0 when detected without
    one: the incident resolved itself), None when not detected."""
    ttd = (round(alert["seconds"] * 1000) if alert else 0) if detected else None
    return Observation(detected, observed, ttd, "ms", evidence, alert, findings)
