"""The handlers of `tc`'s commands: each turns parsed arguments into one operation call and returns its Result.

Operations are imported inside the handlers, so `tc --help` and `tc spec validate` start fast and never
import NautilusTrader. Handlers never print; long-running ones report progress through the reporter.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from opslab.cli.reporter import Reporter, table
from opslab.errors import InputError

def port_number(text: str) -> int:
    """argparse type for --port (also used for TC_METRICS_PORT): an integer 0-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (expected 0-65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range (expected 0-65535)")
    return value


def drill_jobs(text: str) -> int:
    """argparse type for --jobs: how many drills at once, 1 to MAX_JOBS."""
    from opslab.drills import MAX_JOBS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of drills (expected 1-{MAX_JOBS})") from None
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"{value} is out of range (expected 1-{MAX_JOBS} drills at once)")
    return value


def load_spec(path: str) -> Any:
    from opslab import spec

    return spec.load(path)


def progress(args: argparse.Namespace, unit: str) -> Any:
    """A progress printer for long work: stderr, only on a terminal and not in --json mode."""
    if args.json or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r  {unit} {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def spec_validate(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.result import Result

    loaded = load_spec(args.spec)
    return Result("ok", f"{args.spec}: ok (run_id {loaded.run_id}, {loaded.config_hash})",
                  data={"run_id": loaded.run_id, "config_hash": loaded.config_hash, "spec": loaded.data})


def data_prepare(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.datasets import store

    loaded = load_spec(args.spec)
    if loaded.data["dataset"]["kind"] == "imported":  # made by `tc data import`; here only checked intact
        from opslab.datasets import resolve

        return resolve.converge_for_spec(loaded.data, check=args.check)
    return store.prepare(store.DatasetParams.from_spec(loaded.data), force=args.force, check=args.check)


def data_fingerprint(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.datasets import store

    return store.fingerprint_op(args.path)


def quality_settings(args: argparse.Namespace) -> Any:
    from opslab.datasets import quality

    counts = {}
    for pair in args.max or []:
        name, _, value = pair.partition("=")
        if name not in quality.CHECKS or not value.isdigit():
            raise InputError(f"--max {pair!r}: expected CHECK=N with CHECK one of {', '.join(quality.CHECKS)} and N a whole number")
        counts[name] = int(value)
    return quality.Settings(zscore=args.zscore, zero_volume_run=args.zero_volume_run, max_counts=counts)


def data_import(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.datasets import imports

    if args.catalog:
        if args.interval is not None:
            raise InputError(f"--interval {args.interval}: for --csv; a catalog's interval is its --bar-type's")
        return imports.import_catalog(args.catalog, args.id, args.bar_type, args.instrument, quality_settings(args),
                                       force=args.force, check=args.check, instrument_file=args.instrument_file)
    return imports.import_csv(args.csv, args.id, imports.parse_map(args.map or []), args.time_is, args.instrument,
                               quality_settings(args), force=args.force, check=args.check, instrument_file=args.instrument_file,
                               fmt=args.format, progress=report.progress(), interval=args.interval)


def data_check(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.datasets import imports

    return imports.check_op(args.dataset, quality_settings(args), check=args.check)


def run_init(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import runs

    return runs.init(load_spec(args.spec), check=args.check)


RUN_COLUMNS = {"run_id": "RUN_ID", "status": "STATUS", "engine_kind": "ENGINE", "scenario": "SCENARIO", "created_at": "CREATED"}


def run_list(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import runs

    result = runs.list_runs()
    rows = result.data.get("runs", [])
    if rows:  # the operation's rows as a table under a header
        result.details = table(list(RUN_COLUMNS.values()), [[row.get(key, "") for key in RUN_COLUMNS] for row in rows])
    return result


def run_show(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import runs

    result = runs.show(args.run_id)
    found = result.data
    meta = found.get("metadata", {})
    scenario, strategy = meta.get("scenario") or {}, meta.get("strategy") or {}
    fields = [("status", meta.get("status")), ("engine", meta.get("engine_kind")),
              ("scenario", f"{scenario.get('name')} {scenario.get('version')}"),
              ("strategy", f"{strategy.get('name')} {strategy.get('version')}"), ("config hash", meta.get("config_hash")),
              ("created", meta.get("created_at")), ("updated", meta.get("updated_at")),
              ("journal", f"{found.get('journal_events')} event(s), last {found.get('last_event')}"),
              ("files", len(found.get("files") or [])), ("folder", ", ".join(result.artifacts))]
    lines = table(["FIELD", "VALUE"], fields)[1:]
    problems = found.get("journal_problems") or []
    if problems:  # a broken chain, an edited or foreign line: never `ok`, and say where to look further
        lines += ["journal problems:", *(f"  {p}" for p in problems),
                  f"the journal cannot be trusted; check every file of the run with `tc artifacts verify {args.run_id}`"]
    result.details = lines
    return result


def run_backtest(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.runs import backtest

    return backtest.run_backtest(load_spec(args.spec), progress=progress(args, "bars"), check=args.check)


def run_paper(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import safety
    from opslab.runs import paper

    kill_switch = paper.Gate("kill_switch", safety.gate)
    return paper.run_paper(load_spec(args.spec), [kill_switch], [kill_switch], progress=progress(args, "step"), check=args.check)


def run_node(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import safety
    from opslab.runs import node

    return node.run_node(load_spec(args.spec), safety.gate, args.venue_url, args.venue_ws_url, check=args.check,
                         cache_db_url=args.cache_db_url)


def rerender_report(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import runs

    return runs.rerender(args.run_id, check=args.check, charts=args.charts)


def artifacts_verify(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import verify

    if args.run_id is not None and not args.run_id.strip():
        raise InputError("tc artifacts verify: RUN_ID: empty; give a run id, or --all for every run")
    if args.run_id and args.all:
        raise InputError("tc artifacts verify: give RUN_ID or --all, not both")
    return verify.verify(args.run_id, all_runs=args.all)


def artifacts_collect(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import collect

    return collect.collect(args.name, args.count, check=args.check)


def killswitch_engage(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import safety

    return safety.engage(args.reason, check=args.check, wait_s=args.wait_seconds)


def killswitch_release(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import safety

    return safety.release(args.reason, force=args.force, check=args.check)


def killswitch_status(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import safety

    return safety.status()


def reconcile(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import reconcile

    return reconcile.reconcile(load_spec(args.spec), args.expected, args.observed, check=args.check)


def readiness(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.connectivity import readiness

    return readiness.evaluate(load_spec(args.spec), check=args.check)


def probe(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.connectivity import probe
    from opslab import urls

    urls.parse(args.url)  # refuse a bad URL before reading anything else
    return probe.run_probe(load_spec(args.spec), args.url, args.timeout_ms, check=args.check)


def venue_serve(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.venue import faults
    from opslab.venue.server import BinanceVenue
    from opslab.result import Result

    venue = BinanceVenue(load_spec(args.spec) if args.spec else None, args.host, args.port, faults.parse_faults(args.fault),
                         speed=args.speed, reset=args.reset, replay_now=args.replay_now, ws_port=args.ws_port,
                         ping_interval_s=args.ping_interval, binance_api=args.binance_api, futures_ws_port=args.futures_ws_port,
                         funding_every_bars=args.funding_every_bars)
    state = f" state {venue.state_path}" if venue.state_path else ""
    venue.serve(on_ready=lambda v: report.event("listening", f"listening on {v.url} websocket {v.ws_url}{state} futures websocket {v.futures_ws_url}",
                                                url=v.url, ws_url=v.ws_url, futures_ws_url=v.futures_ws_url))
    return Result("ok", f"venue on {venue.url} stopped", data={"url": venue.url, "ws_url": venue.ws_url, "futures_ws_url": venue.futures_ws_url,
                                                               "stats": venue.stats()})


def metrics_serve(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import fs
    from opslab.metrics.server import PER_RUN_ENV, MetricsServer, per_run_limit
    from opslab.result import Result

    port = args.port
    if port is None:
        try:
            port = port_number(os.environ.get("TC_METRICS_PORT") or "9108")
        except argparse.ArgumentTypeError as exc:
            raise InputError(f"TC_METRICS_PORT: {exc}") from None
    per_run = per_run_limit(args.per_run if args.per_run is not None else os.environ.get(PER_RUN_ENV))
    server = MetricsServer(fs.root(), args.host, port, per_run)
    if server.exposed:
        report.event("warning", f"warning: --host {args.host} exposes the lab's metrics beyond this machine; the default is 127.0.0.1")
    server.serve(lambda url: report.event("listening", f"serving {fs.root()} on {url}/metrics (and /healthz)", url=f"{url}/metrics"))
    return Result("ok", f"metrics exporter on {server.url} stopped after {server.scrapes} scrape(s)")


def metrics_dump(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import fs
    from opslab.metrics.exposition import OPENMETRICS, TEXT
    from opslab.metrics.server import PER_RUN_ENV, dump, per_run_limit

    per_run = per_run_limit(args.per_run if args.per_run is not None else os.environ.get(PER_RUN_ENV))
    return dump(fs.root_for_read(), OPENMETRICS if args.openmetrics else TEXT, per_run)


def drill_list(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.drills import runner

    return runner.list_drills(args.kind or "all")


def drill_run(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.drills import runner

    every = args.all or args.kind is not None
    if bool(args.name) == every:
        raise InputError("tc drill run: give one drill NAME, or --all / --kind KIND, or several NAMEs (see 'tc drill list')")
    started: dict[str, float] = {}

    def start(i: int, n: int, name: str) -> None:
        started[name] = time.monotonic()
        where = f"{i}/{n}: " if n > 1 or every else ""
        report.event("drill", f"drill {where}{name} ...", drill=name, index=i, total=n)

    def finish(i: int, n: int, result: dict[str, Any]) -> None:
        name, verdict = result["drill"], result["verdict"]
        seconds = round(time.monotonic() - started.get(name, time.monotonic()), 1)
        seen = "detected" if result["detected"] else "NOT detected"
        report.event("drill_finished", f"drill {i}/{n}: {name} {verdict} ({seen}) in {seconds:.1f} s", drill=name, index=i, total=n,
                     verdict=verdict, detected=result["detected"], seconds=seconds)

    if len(args.name) == 1 and args.jobs == 1:
        return runner.run(args.name[0], check=args.check, progress=start)
    return runner.run_all(check=args.check, kind=args.kind or "lab", progress=start, finished=finish, jobs=args.jobs, names=args.name)


def drill_matrix(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.drills import matrix

    return matrix.run(args.engines, args.drill, check=args.check, progress=lambda text: report.event("matrix", text), keep=args.keep,
                      jobs=args.jobs)


def alerts_receive(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab import fs, httpserver
    from opslab.alerts import notifications
    from opslab.alerts.receiver import DEFAULT_PORT, Receiver
    from opslab.result import Result

    port = args.port
    if port is None:
        try:
            port = port_number(os.environ.get("TC_ALERTS_PORT") or str(DEFAULT_PORT))
        except argparse.ArgumentTypeError as exc:
            raise InputError(f"TC_ALERTS_PORT: {exc}") from None
    counts = {"recorded": 0, "refused": 0, "failed": 0}

    def heard(outcome: str, line: Any, error: Any) -> None:
        counts[outcome] += 1
        if line:
            names = sorted({a["labels"].get("alertname", "?") for a in line["notification"]["alerts"]})
            report.event(outcome, f"recorded #{line['seq']}: {line['notification']['status']} {', '.join(names)}",
                         seq=line["seq"], status=line["notification"]["status"], alerts=names)
        else:
            report.event(outcome, f"{outcome}: {error}", error=error)

    fs.root_for_write()
    receiver = Receiver(fs.root(), args.host, port, heard)
    httpserver.serve_until_signal(receiver.server, lambda url: report.event(
        "listening", f"listening on {url}/alerts (recording into {notifications.history_path()})", url=f"{url}/alerts"))
    return Result("ok", f"alert receiver on {receiver.url} stopped: {counts['recorded']} recorded, {counts['refused']} refused, "
                  f"{counts['failed']} failed", data=counts)


def alerts_list(args: argparse.Namespace, report: Reporter) -> Any:
    from opslab.alerts import notifications

    return notifications.list_notifications(args.limit)

