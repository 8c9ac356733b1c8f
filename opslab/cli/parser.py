"""The `tc` parser: command groups, leaf commands with their help, examples and handler (cli/commands.py)."""

from __future__ import annotations

import argparse
import difflib
from typing import Any, Callable, Iterable, Sequence

from opslab import __version__, market
from opslab.cli import commands
from opslab.cli.commands import drill_jobs, port_number
from opslab.cli.reporter import Reporter
from opslab.drills import KINDS
from opslab.errors import InputError

DRILL_KINDS = (*KINDS, "all")

Handler = Callable[[argparse.Namespace, Reporter], Any]


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit 2 through the usual path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message} (see '{self.prog} --help')")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a choice (a command, --kind ...), with a did-you-mean for a near miss."""
        try:
            super()._check_value(action, value)  # type: ignore[misc]
        except argparse.ArgumentError as exc:
            hint = did_you_mean(str(value), action.choices or ())
            if not hint:
                raise
            raise argparse.ArgumentError(action, f"{exc.message}; {hint}") from None


    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:  # type: ignore[override]
        """argparse's, noting the command that got unknown arguments (the innermost parser: it runs first) and, for
        an unknown --option, the near miss among that command's own options."""
        ns, extras = super().parse_known_args(args, namespace)
        if extras and not getattr(ns, "_unknown_in", None):
            options = [o for action in self._actions for o in action.option_strings]
            names = [word.split("=", 1)[0] for word in extras if word.startswith("--")]
            hints = [f"{name}: {hint}" for name in names if (hint := did_you_mean(name, options))]
            ns._unknown_in = (self.prog, hints[:1])  # type: ignore[attr-defined]
        return ns, extras

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        prog, hints = getattr(ns, "_unknown_in", (self.prog, []))
        if extras:
            said = "; ".join([f"unrecognized arguments: {' '.join(extras)}"[:300], *hints])
            raise InputError(f"{prog}: {said} (see '{prog} --help')")
        vars(ns).pop("_unknown_in", None)
        return ns


def did_you_mean(word: str, known: Iterable[Any]) -> str:
    """'did you mean 'X'?' for the closest of KNOWN to WORD (difflib), or '' when none is close."""
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def _common() -> argparse.ArgumentParser:
    # SUPPRESS: a level that does not see the flag leaves it alone, so `tc --json run list`,
    # `tc run --json list` and `tc run list --json` agree (the top level alone has False defaults).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as one JSON object")
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the stack trace of an unexpected error (also TC_DEBUG=1)")
    return common


COMMON = _common()


def leaf(sub: Any, name: str, help_: str, examples: str, handler: Handler) -> argparse.ArgumentParser:
    """Add a leaf command with --json/--traceback, an examples epilog and its handler."""
    parser = sub.add_parser(
        name, help=help_, description=help_, parents=[COMMON],
        epilog="examples:\n" + examples.strip("\n"), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def group(sub: Any, name: str, help_: str) -> Any:
    """Add a command group and return its subparsers."""
    parser = sub.add_parser(name, help=help_, description=help_, parents=[COMMON])
    inner = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    inner.required = True
    return inner


def _check_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="print the plan, change nothing")


def _group_spec(sub: Any) -> None:
    g = group(sub, "spec", "validate RunSpecs")
    p = leaf(g, "validate", "validate a RunSpec against schemas/runspec.schema.json", """
  tc spec validate fixtures/specs/demo.yaml
  tc spec validate my-run.yaml --json     # normalized spec and config hash as JSON""", commands.spec_validate)
    p.add_argument("spec", metavar="SPEC", help="RunSpec file (YAML or JSON)")


def _group_data(sub: Any) -> None:
    g = group(sub, "data", "prepare, import, check and fingerprint datasets")
    p = leaf(g, "prepare", "write the spec's deterministic synthetic dataset (ok when already intact)", """
  tc data prepare --spec fixtures/specs/demo.yaml
  tc data prepare --spec fixtures/specs/demo.yaml --check   # only say what would change
  tc data prepare --spec fixtures/specs/demo.yaml --force   # rebuild a dataset that no longer matches its manifest""", commands.data_prepare)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec whose dataset block to prepare")
    _check_flag(p)
    p.add_argument("--force", action="store_true", help="rewrite the dataset even if it exists")
    p = leaf(g, "fingerprint", "sha256 of a file, streamed (constant memory)", """
  tc data fingerprint artifacts/datasets/*/bars.csv""", commands.data_fingerprint)
    p.add_argument("path", metavar="PATH", help="file to fingerprint")
    _data_import_and_check(g)


def _quality_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zscore", type=float, default=10.0, metavar="Z", help="robust z-score above which a return is an outlier (default 10)")
    p.add_argument("--zero-volume-run", type=int, default=3, metavar="N", help="consecutive zero-volume bars that count as a run (default 3)")
    p.add_argument("--max", action="append", metavar="CHECK=N", help="let CHECK pass with up to N findings (repeatable; default 0)")


def _data_import_and_check(g: Any) -> None:
    p = leaf(g, "import", "import your bars (CSV) as a dataset under the artifacts root and check their quality (exit 4 when a check fails)", """
  tc data import --csv fixtures/data/btcusdt-1m-sample.csv --id btc-sample
  tc data import --csv BTCUSDT-1m-2024-03-01.zip --csv BTCUSDT-1m-2024-03-02.zip --id btc-march   # Binance's files as they are
  tc data import --csv klines.csv --id my-klines --map ts_close=open_time --time-is open
  tc data import --csv hourly.csv --id my-hourly --interval 1h   # a plain CSV of 1-hour bars
  tc data import --csv bars.csv --id my-bars --check        # only say what would change
  tc data import --csv bars.csv --id my-bars --instrument-file btcusdt.json   # your instrument's precisions and fees
  tc data import --catalog ~/nautilus/catalog --id from-catalog   # bars of --bar-type from a ParquetDataCatalog""", commands.data_import)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="FILE", action="append",
                        help="CSV with a header: ts_close,open,high,low,close,volume (see --map), or a Binance kline zip or CSV "
                             "as it is; repeat it for several files of one dataset (taken in time order)")
    source.add_argument("--catalog", metavar="DIR", help="a NautilusTrader ParquetDataCatalog folder (read with its own reader)")
    p.add_argument("--format", default="auto", choices=["auto", "csv", "binance-klines"],
                   help="how --csv files are read: auto (Binance kline files by their shape, other files as CSV), csv, binance-klines")
    p.add_argument("--bar-type", metavar="T", help=f"the catalog's bar type to import (default: the instrument's 1m bars, {market.BAR_TYPE}; "
                   "any interval of it, e.g. BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL, becomes the dataset's)")
    p.add_argument("--id", required=True, metavar="DATASET", help="dataset id (folder under datasets/; a spec names it as dataset: {kind: imported, id: ...})")
    p.add_argument("--map", action="append", metavar="COLUMN=THEIRS", help="read COLUMN from the CSV's column THEIRS (repeatable)")
    p.add_argument("--time-is", choices=["close", "open"], default="close", help="whether the time column is the bar's close (default) or open time")
    p.add_argument("--interval", metavar="I", help=f"a plain CSV's bar interval, by Binance's name ({', '.join(market.INTERVALS)}; default 1m): "
                   "the dataset's bar type and the spacing its gap check expects (a kline file says its own)")
    instrument = p.add_mutually_exclusive_group()
    instrument.add_argument("--instrument", default="test:BTCUSDT", help="built-in instrument definition (test:BTCUSDT, the default)")
    instrument.add_argument("--instrument-file", metavar="FILE",
                            help="instrument definition as JSON in NautilusTrader's CurrencyPair.to_dict form: any Binance spot pair "
                                 "(fixtures/instruments/ has ETHUSDT's and SOLUSDT's; docs: byo)")
    p.add_argument("--force", action="store_true", help="replace a dataset with the same id made from other input")
    _quality_flags(p)
    _check_flag(p)
    p = leaf(g, "check", "run the data quality checks on a dataset and write its quality.json (exit 4 when a check fails)", """
  tc data check btc-sample
  tc data check btc-sample --zscore 6 --max gaps=2   # tighter outliers, tolerate two gaps""", commands.data_check)
    p.add_argument("dataset", metavar="DATASET", help="dataset id (a folder under datasets/)")
    _quality_flags(p)
    _check_flag(p)


def _group_run(sub: Any) -> None:
    g = group(sub, "run", "initialize, run and inspect runs")
    p = leaf(g, "init", "create the run folder for a spec (ok when it already exists with the same spec)", """
  tc run init --spec fixtures/specs/demo.yaml
  TC_ARTIFACTS_DIR=/tmp/lab tc run init --spec fixtures/specs/demo.yaml --json""", commands.run_init)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec file")
    _check_flag(p)
    p = leaf(g, "backtest", "run the spec's scenario through a real NautilusTrader BacktestEngine (prepares the dataset if missing)", """
  tc run backtest --spec fixtures/specs/demo.yaml
  tc run backtest --spec fixtures/specs/demo.yaml --check   # only say what would happen
  tc run backtest --spec fixtures/specs/demo.yaml --json    # counters as JSON""", commands.run_backtest)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec with engine.kind: backtest")
    _check_flag(p)
    p = leaf(g, "paper", "run a bounded paper lifecycle (no exchange, no network); SIGINT/SIGTERM stop it gracefully; "
             "exit 3 when the kill switch blocks or halts it", """
  tc run paper --spec fixtures/specs/paper-demo.yaml
  tc run paper --spec fixtures/specs/paper-demo.yaml --json   # lifecycle history as JSON""", commands.run_paper)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec with engine.kind: paper")
    _check_flag(p)
    p = leaf(g, "node", "run a live paper node: a real TradingNode with the Binance adapter against `tc venue serve --spec` on 127.0.0.1", """
  TC_BINANCE_API_KEY=k TC_BINANCE_API_SECRET=s tc venue serve --spec fixtures/specs/node-demo.yaml --port 8080 --ws-port 8081 &
  TC_BINANCE_API_KEY=k TC_BINANCE_API_SECRET=s tc run node --spec fixtures/specs/node-demo.yaml""", commands.run_node)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec with engine.kind: node")
    p.add_argument("--venue-url", metavar="URL", help="the venue's REST base URL (overrides engine.node.venue_http_url; loopback only)")
    p.add_argument("--venue-ws-url", metavar="URL", help="the venue's WebSocket base URL (overrides engine.node.venue_ws_url; loopback only)")
    p.add_argument("--cache-db-url", metavar="URL", help="redis://127.0.0.1:PORT: a Redis already running for the spec's "
                   "engine.node.cache_database (default: tc starts its own under the run folder)")
    _check_flag(p)
    leaf(g, "list", "list runs under the artifacts root", "  tc run list\n  tc run list --json", commands.run_list)
    p = leaf(g, "show", "show one run's metadata and journal position", "  tc run show demo", commands.run_show)
    p.add_argument("run_id", metavar="RUN_ID")


def _group_report(sub: Any) -> None:
    p = leaf(sub, "report", "re-render a run's report.md from its artifacts and print its path",
             "  tc report demo\n  tc report demo --check\n  tc report bench-100k --charts   # a run over 20,000 bars: draw its charts too",
             commands.rerender_report)
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--charts", action="store_true",
                   help="draw the charts of a run over 20,000 bars, which report.html leaves out at run time; recorded in "
                        "its journal, so every later rendering draws them (about a second)")
    _check_flag(p)


def _group_artifacts(sub: Any) -> None:
    g = group(sub, "artifacts", "check artifacts against their contracts and collect a run set's results")
    p = leaf(g, "verify", "check every file under the root: schemas, digests, chains, datasets, kill switch, links, unknown files (exit 4 on any problem)", """
  tc artifacts verify demo
  tc artifacts verify --all       # every run plus datasets, state and drills
  TC_MANIFEST_KEY=... tc artifacts verify --all   # also check the manifests' HMAC seals""", commands.artifacts_verify)
    p.add_argument("run_id", metavar="RUN_ID", nargs="?")
    p.add_argument("--all", action="store_true", help="verify every run and root artifact (the default without RUN_ID)")
    p = leaf(g, "collect", "the verified fan-in of a run set (an Indexed Job's runs NAME-0 .. NAME-(N-1)): verify every member's "
             "chain, manifest and seal, then write collections/NAME.json (exit 4 names each missing, unfinished or tampered index; "
             "nothing written)", """
  tc artifacts collect sweep --count 3            # runs sweep-0, sweep-1, sweep-2 -> collections/sweep.json
  tc artifacts collect sweep --count 3 --check    # verify and say what would be written, write nothing
  TC_MANIFEST_KEY=... tc artifacts collect sweep --count 3 --json   # also check the members' HMAC seals
A second collect of the same members says ok and writes nothing. `make k8s-render SPECS="a.yaml b.yaml" NAME=sweep`
renders it as the Job sweep-collect beside the Indexed Job (docs/kubernetes.md).""",
             commands.artifacts_collect)
    p.add_argument("name", metavar="NAME", help="the run set's name (the Indexed Job's; its runs are NAME-<index>)")
    p.add_argument("--count", type=int, required=True, metavar="N", help="how many completion indices the set has (1 to 1000)")
    _check_flag(p)


def _group_killswitch(sub: Any) -> None:
    g = group(sub, "killswitch", "the file-based kill switch: while it is engaged, paper and node runs do not start (exit 3) "
              "and running ones halt; backtests are offline replays and still run")
    p = leaf(g, "engage", "engage the switch (ok when already engaged), then wake every running node and wait until each "
             "acknowledged HALTED with no order in flight (exit 4 names a node that did not); paper runs then block (exit 3) or stop "
             "at the next step", """
  tc killswitch engage --reason "venue incident 42"
  tc killswitch engage --reason "venue incident 42" --wait-seconds 10 --json   # each node's acknowledgement and latency
  tc killswitch engage --reason "drill" --check     # only say what would change""", commands.killswitch_engage)
    p.add_argument("--reason", required=True, help="why (kept in state/kill_switch_events.jsonl; at most 200 characters)")
    p.add_argument("--wait-seconds", type=float, default=5.0, metavar="S",
                   help="how long to wait for every running node's HALTED acknowledgement (default 5, 0.1 to 60)")
    _check_flag(p)
    p = leaf(g, "release", "release the switch (ok when already released); --force repairs a state that cannot be trusted", """
  tc killswitch release --reason "incident 42 resolved"
  tc killswitch release --force --reason "state file inspected, was truncated"   # after a fail-closed warning""", commands.killswitch_release)
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    p.add_argument("--force", action="store_true", help="release even though the state cannot be trusted (inspect it first)")
    _check_flag(p)
    leaf(g, "status", "show the switch: exit 0 released, 3 engaged (or untrustworthy: fail closed)", """
  tc killswitch status
  tc killswitch status --json      # state, since, by (user@host), reason, warning""", commands.killswitch_status)


def _group_reconcile(sub: Any) -> None:
    p = leaf(sub, "reconcile", "compare expected with observed state (positions, open orders, balances) and record it; exit 4 on a mismatch", """
  tc reconcile --spec fixtures/specs/paper-demo.yaml                 # expected from the spec, observed = the run's final state
  tc reconcile --spec SPEC --expected fixtures/reconciliation/expected.json --observed fixtures/reconciliation/observed_quantity_off.json""",
             commands.reconcile)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec (its run records the observation)")
    p.add_argument("--expected", metavar="FILE", help="expected state (default: reconciliation.expected in the spec)")
    p.add_argument("--observed", metavar="FILE", help="observed state (default: the run's final_state.json)")
    _check_flag(p)


def _group_connectivity(sub: Any) -> None:
    g = group(sub, "connectivity", "readiness to connect (no network) and a loopback-only probe")
    p = leaf(g, "readiness", "check the spec's credential placeholders are set and record it (names only; exit 4 when not ready)", """
  TC_BINANCE_API_KEY=... TC_BINANCE_API_SECRET=... tc connectivity readiness --spec fixtures/specs/connectivity.yaml""", commands.readiness)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec with a connectivity_readiness block")
    _check_flag(p)
    p = leaf(g, "probe", "GET a loopback URL and record a new observation: up/down, status, latency (exit 4 when down)", """
  tc connectivity probe --spec fixtures/specs/connectivity.yaml --url http://127.0.0.1:8080/api/v3/ping
  tc connectivity probe --spec SPEC --url http://[::1]:8080/api/v3/time --timeout-ms 500""", commands.probe)
    p.add_argument("--spec", required=True, metavar="SPEC", help="RunSpec whose run records the probe")
    p.add_argument("--url", required=True, help="http(s)://127.0.0.1, localhost or [::1], optional port and path")
    p.add_argument("--timeout-ms", type=int, default=2000, help="connect + answer timeout (default 2000)")
    _check_flag(p)


def _group_venue(sub: Any) -> None:
    from opslab.venue import faults, profiles  # the fault and profile registries only (built only for `tc venue ...` and the full tree)
    from opslab.venue.futures_contract import FUNDING_EVERY_BARS, MAX_FUNDING_EVERY_BARS

    g = group(sub, "venue", "the lab's venue: Binance Spot REST + WebSocket on 127.0.0.1 with switchable faults")
    p = leaf(g, "serve", "serve the venue until SIGINT/SIGTERM; prints `listening on URL` first", """
  tc venue serve --port 0                      # the lab's built-in dataset, public endpoints; a free port, the first line says which
  tc venue serve --port 8080 --fault latency=200 --fault rate_limit=20/10
  curl -X POST -d '{"faults": ["drop"]}' http://127.0.0.1:8080/admin/faults   # switch faults at runtime
  TC_BINANCE_API_KEY=k TC_BINANCE_API_SECRET=s tc venue serve --spec fixtures/specs/node-demo.yaml --speed 600   # Binance Spot for a node
  TC_BINANCE_API_KEY=k TC_BINANCE_API_SECRET=s tc venue serve --spec fixtures/specs/node-futures.yaml --port 8080 \\
      --futures-ws-port 8082 --speed 600 --funding-every-bars 25   # USD-M Futures for a node, funding every 2.5 s""",
             commands.venue_serve)
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default) or ::1; nothing else")
    p.add_argument("--port", type=port_number, default=0, help="port, 0 for a free one (default)")
    p.add_argument("--fault", action="append", default=[], metavar="MODE",
                   help=f"repeatable: {faults.usage()}")
    p.add_argument("--spec", metavar="SPEC", help="serve this spec's account: replays its dataset, signed endpoints with the API "
                   "key/secret from its connectivity_readiness env names, state kept; see docs/node.md (default: the lab's built-in "
                   "dataset, public endpoints only, nothing kept)")
    p.add_argument("--ws-port", type=port_number, default=0, help="WebSocket port, 0 for a free one (default)")
    p.add_argument("--futures-ws-port", type=port_number, default=0,
                   help="the USD-M Futures streams' port (/fapi is on --port beside Spot), 0 for a free one (default)")
    p.add_argument("--speed", type=float, default=60.0, help="with --spec: dataset minutes replayed per wall-clock minute (default 60)")
    p.add_argument("--funding-every-bars", type=int, default=FUNDING_EVERY_BARS, metavar="N",
                   help=f"the perpetual's funding every N replayed bars, 1 to {MAX_FUNDING_EVERY_BARS:,} (default {FUNDING_EVERY_BARS}: "
                   "Binance's 8 hours of one-minute bars); each is an ACCOUNT_UPDATE FUNDING_FEE on the futures user stream")
    p.add_argument("--ping-interval", type=float, default=20.0, metavar="SECONDS",
                   help="seconds between the WebSocket pings the venue sends every client (default 20, as Binance)")
    p.add_argument("--replay-now", action="store_true", help="with --spec: start the replay at once (default: at the first market subscription)")
    p.add_argument("--reset", action="store_true", help="with --spec: discard the venue's saved state (orders, trades, balances, replay position)")
    p.add_argument("--binance-api", choices=list(profiles.PROFILES), default=profiles.DEFAULT, metavar="PROFILE",
                   help=f"which Binance to play: {profiles.help_text()}; a node needs the one its NautilusTrader speaks (docs/node.md)")


def _group_metrics(sub: Any) -> None:
    g = group(sub, "metrics", "Prometheus metrics from the artifacts")
    p = leaf(g, "serve", "serve /metrics and /healthz (127.0.0.1:9108 by default) until SIGINT/SIGTERM", """
  tc metrics serve                               # http://127.0.0.1:9108/metrics
  TC_METRICS_PORT=9200 tc metrics serve
  tc metrics serve --host 0.0.0.0 --port 9108    # inside a container only (prints a warning)""", commands.metrics_serve)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=None, help="port (default $TC_METRICS_PORT or 9108)")
    p.add_argument("--per-run", default=None, metavar="N",
                   help="serve per-run families for the newest N runs (and running or failed ones); default $TC_METRICS_PER_RUN or 50")
    p = leaf(g, "dump", "print one scrape to stdout (for promtool check metrics or a quick look)", """
  tc metrics dump | promtool check metrics
  tc metrics dump --openmetrics      # the OpenMetrics dialect Prometheus asks for""", commands.metrics_dump)
    p.add_argument("--openmetrics", action="store_true", help="OpenMetrics 1.0 text instead of the classic text format")
    p.add_argument("--per-run", default=None, metavar="N", help="as for serve")


def _group_drill(sub: Any) -> None:
    g = group(sub, "drill", "deterministic failure drills: inject one fault, check the lab detects it")
    p = leaf(g, "list", "list the drills, their kind and their runbooks", "  tc drill list\n  tc drill list --kind node", commands.drill_list)
    p.add_argument("--kind", choices=DRILL_KINDS, help="only drills of this kind")
    p = leaf(g, "run", "run drills, each in an isolated sandbox, and record the results; exit 4 when a failure went undetected", """
  tc drill run mismatch
  tc drill run node_crash node_fill_lost --jobs 2   # these two at once, then artifacts/drills/scorecard.json
  tc drill run --all            # every lab drill (fast checks of the lab's own parts), then artifacts/drills/scorecard.json
  tc drill run --kind node      # every node drill: the real NautilusTrader node, detected through Prometheus + Alertmanager
  tc drill run --kind all       # both kinds
  tc drill run --kind node --jobs 3   # three node drills at once: each has its own sandbox, stack, venue and node
Node drills need prometheus and prometheus-alertmanager on PATH and the checkout's prometheus/ and
alertmanager/ configs (the dev image has both); each starts its own stack, venue and node on 127.0.0.1.
A node drill spends most of its time waiting for an alert, so --jobs cuts a suite's time on a small
machine too; its times to detect then include the wait for a shared CPU (docs/drills.md, Running drills at once).""", commands.drill_run)
    p.add_argument("name", metavar="NAME", nargs="*", help="drill name(s) from `tc drill list` (two or more also write the scorecard)")
    p.add_argument("--all", action="store_true", help="run every drill of --kind (default lab) and write the scorecard")
    p.add_argument("--kind", choices=DRILL_KINDS, help="run every drill of this kind and write the scorecard")
    p.add_argument("--jobs", type=drill_jobs, default=1, metavar="N", help="run N of the drills at once (1-8; default 1, one after another)")
    _check_flag(p)
    p = leaf(g, "matrix", "the upgrade canary: every node drill on each engine profile, side by side; exit 4 when a drill went undetected", """
  tc drill matrix                                   # every engine with an environment in the checkout (.venv, .venv-VERSION)
  tc drill matrix --engines 1.221.0,1.231.0         # then artifacts/drills/matrix.json and matrix.html
  tc drill matrix --engines 1.231.0 --drill node_crash --drill node_kill_switch
  tc drill matrix --keep /tmp/matrix                # each engine's drill artifacts stay in /tmp/matrix/VERSION/artifacts
Each engine runs `tc drill run` in its own environment (build one with `make setup ENGINE=VERSION`); a drill's
row is marked changed when its verdict, its alert or the wording of a finding differs between engines.""", commands.drill_matrix)
    p.add_argument("--engines", metavar="V1,V2", help="comma-separated nautilus_trader releases (default: every environment found)")
    p.add_argument("--drill", action="append", metavar="NAME", help="only this node drill (repeat for more; default all node drills)")
    p.add_argument("--keep", metavar="DIR", help="keep each engine's drill artifacts (results, logs, scorecard) in DIR/VERSION/artifacts; "
                                                 "DIR must be new or empty (default: a temporary folder, removed)")
    p.add_argument("--jobs", type=drill_jobs, default=1, metavar="N", help="run N node drills at once on each engine (1-8; default 1); "
                                                                            "the engines still run one after the other")
    _check_flag(p)


def _group_alerts(sub: Any) -> None:
    g = group(sub, "alerts", "receive Alertmanager notifications and list what fired")
    p = leaf(g, "receive", "record Alertmanager webhook notifications (POST /alerts) until SIGINT/SIGTERM; prints `listening on URL` first", """
  tc alerts receive                         # http://127.0.0.1:9095/alerts (alertmanager/alertmanager.yml's receiver)
  tc alerts receive --port 0                # a free port; the first line says which
  TC_ALERTS_PORT=9200 tc alerts receive""", commands.alerts_receive)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 inside a container only)")
    p.add_argument("--port", type=port_number, default=None, help="port (default $TC_ALERTS_PORT or 9095; 0 for a free one)")
    p = leaf(g, "list", "show the alerts received: when, firing or resolved, severity, summary, runbook", """
  tc alerts list
  tc alerts list --limit 100 --json""", commands.alerts_list)
    p.add_argument("--limit", type=int, default=20, help="show the last N alerts (default 20)")


# The command words and what builds each one's part of the tree, in `tc --help`'s order.
GROUPS: dict[str, Callable[[Any], None]] = {
    "spec": _group_spec, "data": _group_data, "run": _group_run, "report": _group_report, "artifacts": _group_artifacts,
    "killswitch": _group_killswitch, "reconcile": _group_reconcile, "connectivity": _group_connectivity, "venue": _group_venue,
    "metrics": _group_metrics, "drill": _group_drill, "alerts": _group_alerts}


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The `tc` parser: the whole tree; or, given ARGV whose first word (not an option) is a command, only that command's
    part. Building every part costs a `tc spec validate` about a tenth of its time (issue 31, item 2: measured with
    `make bench`); a mistyped command, `tc --help` or no command at all still get the whole tree (its list, its
    did-you-mean)."""
    parser = Parser(
        prog="tc",
        description="TradingChassis Ops Lab: spec-driven NautilusTrader runs whose every outcome is a schema-validated artifact.",
        epilog="exit codes: 0 ok, 1 unexpected error, 2 bad input, 3 blocked by safety, 4 a check failed, 5 busy (another tc holds the lock)\n"
        "artifacts root: $TC_ARTIFACTS_DIR (default ./artifacts)\n\n"
        "examples:\n  tc spec validate fixtures/specs/demo.yaml\n  tc run init --spec fixtures/specs/demo.yaml\n  tc artifacts verify --all",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The top level's own --json/--traceback (not COMMON's shared actions) carry the False defaults.
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object (also after any command word)")
    parser.add_argument("--traceback", action="store_true", help="show the stack trace of an unexpected error (also TC_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"tc (opslab) {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    word = next((arg for arg in argv if not arg.startswith("-")), None) if argv is not None else None
    for name, add in GROUPS.items():
        if word not in GROUPS or name == word:
            add(sub)
    return parser

