"""report.html and drills/scorecard.html: self-contained pages rendered only from artifacts on disk.

The same artifacts report.md is rendered from, plus charts (opslab.report.charts, inline SVG). A page
fetches nothing: no script, no external style, font or image, and a Content-Security-Policy of
`default-src 'none'` so a browser refuses any fetch even if stored text tried one. Stored text is
escaped (opslab.escaping). Output depends only on the artifacts' bytes, so the same run gives the
same page byte for byte.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from opslab import clock, contracts, fs, journal
from opslab.errors import InputError
from opslab.escaping import html as esc

MAX_BARS_BYTES = 256 << 20  # a dataset's bars.csv (100k bars is about 6 MiB)
# A run of more bars gets its charts on request (`tc report RUN --charts`, recorded in its journal as CHARTS_REQUESTED):
# a user of a large backtest does not need them every run, and they are matplotlib's import and three figures, about a
# second and 30 MB beside the engine (docs/benchmarks.md). What the run records is the same either way.
CHARTS_AT_RUN_TIME_BARS = 20_000
CHARTS_REQUESTED = "report_charts_requested"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#fff}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
p.note{color:#59636e;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px;word-break:break-all}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.good{background:#2ca02c}.bad{background:#d62728}.warn{background:#ff7f0e}.muted{background:#7f7f7f}
tr.mismatch td{background:#ffebe9}tr.mismatch td.diff{font-weight:700;color:#a40e26}
figure.chart{margin:12px 0;padding:8px;border:1px solid #d0d7de;border-radius:6px}
figure.chart svg{width:100%;height:auto;display:block}
figcaption{color:#59636e;font-size:12px;margin-top:4px}
details summary{cursor:pointer;color:#0969da}
p.verdicts{font-size:15px;margin:0 0 8px}p.verdicts a{color:#0969da}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _read_bytes(path: Path, cap: int) -> bytes | None:
    """The file's bytes through the safe file layer, or None when absent, a link, unreadable or larger than CAP."""
    try:
        return fs.read_bytes(path, cap)
    except (OSError, InputError):
        return None


def _json(folder: Path, name: str, *fill: str) -> Any:
    """A registered artifact of FOLDER (a run folder, or the root for root artifacts; PART fills the
    path's `*` segments), or None when absent or unreadable (`tc artifacts verify` reports those)."""
    try:
        return fs.read_json(contracts.artifact(name).at(folder, *fill))
    except (OSError, InputError):
        return None


def _journal(folder: Path) -> list[dict[str, Any]]:
    return journal.read(folder / contracts.artifact("journal").path)


_ts = clock.parse_iso


def _page(title: str, note: str, sections: Iterable[str]) -> str:
    body = "\n".join(s for s in sections if s)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{esc(title)}</h1>\n<p class=\"note\">{note}</p>\n{body}\n</main>\n</body>\n</html>\n")


def _table(rows: Iterable[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _grid(head: list[str], rows: Iterable[list[str]], row_class: Iterable[str] | None = None) -> str:
    classes = list(row_class) if row_class is not None else None
    lines = [f"<table><thead><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        lines.append(f"<tr{cls}>{''.join(row)}</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _figure(name: str, svg: str, caption: str) -> str:
    return f'<figure class="chart" data-chart="{esc(name)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{esc(text)}</span>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


# --- run report sections: each returns "" when its artifacts are absent -------------------------


STATUS_KIND = {"stopped": "good", "completed": "good", "initialized": "muted", "running": "warn",
               "blocked": "bad", "failed": "bad"}


def _status(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    """The verdicts first: the run's status, the kill switch as the run saw it, reconciliation; each links to its section."""
    badges = [f"run {_badge(str(meta.get('status', 'unknown')).upper(), STATUS_KIND.get(str(meta.get('status')), 'muted'))}"]
    seen = meta.get("safety")
    if seen:
        state = seen.get("kill_switch")
        kind = {"engaged": ("ENGAGED", "bad"), "released": ("released", "good")}.get(state, ("UNREADABLE", "bad"))
        badges.append(f'<a href="#safety">kill switch</a> {_badge(*kind)}')
    doc = _json(folder, "reconciliation")
    if doc:
        verdict = str(doc.get("status", ""))
        summary = doc.get("summary", {})
        badges.append(f'<a href="#reconciliation">reconciliation</a> {_badge(verdict.upper(), "good" if verdict == "match" else "bad")} '
                      f"{esc(summary.get('matches'))}/{esc(summary.get('checks'))} checks match")
    return '<section id="status">\n<p class="verdicts">' + " &nbsp; ".join(badges) + "</p>\n</section>"


def _overview(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    scenario, strategy = meta.get("scenario") or {}, meta.get("strategy") or {}
    rows = [("run_id", esc(meta.get("run_id"))), ("status", esc(meta.get("status"))), ("engine", esc(meta.get("engine_kind"))),
            ("scenario", esc(f"{scenario.get('name')} {scenario.get('version')}" if scenario else None)),
            ("strategy (identity only)", esc(f"{strategy.get('name')} {strategy.get('version')}" if strategy else None)),
            ("config hash", f"<code>{esc(meta.get('config_hash'))}</code>"),
            ("versions", esc(", ".join(f"{k} {v}" for k, v in sorted((meta.get("versions") or {}).items()))))]
    if meta.get("engine_config_hash"):  # runs made before it existed have none
        rows.insert(-1, ("config hash on this engine", f"<code>{esc(meta['engine_config_hash'])}</code>"))
    desc = f"<p>{esc(spec['description'].strip())}</p>" if spec.get("description") else ""
    ds = meta.get("dataset")
    dataset = ""
    if ds:
        dataset = "<h3>Dataset</h3>" + _table([("dataset_id", esc(ds.get("dataset_id"))), ("fingerprint", f"<code>{esc(ds.get('fingerprint'))}</code>"),
                                              ("bars", esc(ds.get("rows"))), ("first bar close", esc(ds.get("first_bar_close"))),
                                              ("last bar close", esc(ds.get("last_bar_close")))])
    return _section("overview", "Overview", desc + _table(rows) + dataset)


def _execution(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    summary = meta.get("engine_summary")
    if not summary:
        return ""
    rows = [(name.replace("_", " "), f"{esc(value)}") for name, value in summary.get("counters", {}).items()]
    rows += [(f"final balance {ccy}", esc(amount)) for ccy, amount in sorted(summary.get("final_balances", {}).items())]
    rows += [("open positions at end", esc(summary.get("open_positions"))), ("open orders at end", esc(summary.get("open_orders")))]
    text = (f"<p>Mode: {esc(summary.get('mode'))}, {esc(summary.get('bars_given'))} bars given to NautilusTrader. "
            "Counters of a smoke test of the plumbing, not a performance claim.</p>")
    return _section("execution", "Scenario execution", text + _table(rows))


def _bars(folder: Path, meta: dict[str, Any]) -> tuple[list[Any], int]:
    """The bars the engine was given, bucketed while reading to at most charts.MAX_POINTS (low, high, last close),
    and the bucket size in bars."""
    from opslab.report.charts import MAX_POINTS, Bar

    ds = meta.get("dataset") or {}
    dataset_id = str(ds.get("dataset_id", ""))
    limit = int((meta.get("engine_summary") or {}).get("bars_given") or 0)  # none before the engine ran
    if not limit or not dataset_id or "/" in dataset_id or dataset_id.startswith("."):
        return [], 1
    root = folder.parent.parent  # runs/<run_id> -> the artifacts root the run belongs to
    raw = _read_bytes(contracts.artifact("dataset_bars").at(root, dataset_id), MAX_BARS_BYTES)
    if raw is None:
        return [], 1
    size = max(1, -(-limit // MAX_POINTS))
    buckets: list[Any] = []
    low = high = 0.0
    try:
        rows = csv.reader(io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", newline=""))  # decoded as read: a StringIO of 100k bars holds 4 bytes a character
        header = next(rows)
        i_ts, i_low, i_high, i_close = (header.index(c) for c in ("ts_close", "low", "high", "close"))
        for n, row in enumerate(rows):
            if n >= limit:
                break
            lo, hi = float(row[i_low]), float(row[i_high])
            low, high = (lo, hi) if n % size == 0 else (min(low, lo), max(high, hi))
            if n % size == size - 1 or n == limit - 1:
                buckets.append(Bar(_ts(row[i_ts]), low, high, float(row[i_close])))
    except (StopIteration, ValueError, IndexError, UnicodeDecodeError):
        return [], 1
    return buckets, size


def _fills(folder: Path) -> list[Any]:
    from opslab.report.charts import Fill

    doc = _json(folder, "fills") or {}
    try:
        return [Fill(_ts(f["ts_event"]), f["side"], float(f["quantity"]), float(f["price"])) for f in doc.get("fills", [])]
    except (KeyError, TypeError, ValueError):
        return []


def _bars_seen(folder: Path) -> list[tuple[float, int]]:
    """(wall-clock seconds, bars the node had seen) per heartbeat, in order: the node's clock against its own bar
    count, the one link between a live node's wall-clock fills and the dataset bars the venue replayed to it.

    The time is the heartbeat's last_market_data_at (the node's clock, in milliseconds): bars arrive with market
    data, so the count is the count at that instant; the chained `ts` has whole seconds and a frozen clock
    (SOURCE_DATE_EPOCH) would stop it."""
    points: list[tuple[float, int]] = []
    for beat in journal.read(contracts.artifact("node_heartbeat").at(folder, history=True)):
        try:
            at = clock.epoch_seconds_fraction(str(beat["last_market_data_at"]))
            seen = int(beat["bars_seen"])
        except (KeyError, TypeError, ValueError):
            continue  # before the first market data there is nothing to link
        if not points or (at > points[-1][0] and seen >= points[-1][1]):
            points.append((at, seen))
    return points


def bar_index(points: list[tuple[float, int]], at: float) -> int:
    """Index of the dataset bar a node fill at wall-clock AT traded against: the bar being replayed, the one after
    the BARS_SEEN the node had by then (linear between heartbeats, held flat before the first and after the last)."""
    if at <= points[0][0]:
        return points[0][1]
    for (t0, n0), (t1, n1) in zip(points, points[1:], strict=False):  # consecutive pairs
        if at <= t1:
            return n0 + int((n1 - n0) * (at - t0) / (t1 - t0))
    return points[-1][1]


def _on_bars(fills: list[Any], bars: list[Any], size: int, points: list[tuple[float, int]]) -> list[Any]:
    """A node's wall-clock FILLS moved onto the dataset clock of BARS (buckets of SIZE bars): each to the close of the
    bar it traded against, at its own price."""
    from dataclasses import replace

    last = len(bars) - 1
    return [replace(f, ts=bars[min(last, bar_index(points, f.ts.timestamp()) // size)].ts) for f in fills]


def charts_deferred(folder: Path, meta: dict[str, Any]) -> int | None:
    """The bars of a run whose charts are drawn on request only (over CHARTS_AT_RUN_TIME_BARS, and no
    report_charts_requested event in its journal yet), else None: its page draws them."""
    bars = ((meta.get("engine_summary") or {}).get("bars_given")) or 0
    if bars <= CHARTS_AT_RUN_TIME_BARS or journal.has_event(folder / contracts.artifact("journal").path, CHARTS_REQUESTED):
        return None
    return bars


def _charts(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    deferred = charts_deferred(folder, meta)
    if deferred is not None:  # drawing them is matplotlib's import and three figures: about a second and 30 MB beside the engine
        return _section("charts", "Charts", f'<p class="note">Not drawn with the run: its {deferred:,} bars are over '
                        f"{CHARTS_AT_RUN_TIME_BARS:,}, where drawing the charts would cost about a second and 30 MB beside the "
                        f"engine. <code>tc report {esc(meta.get('run_id', 'RUN_ID'))} --charts</code> draws them into this page "
                        "(and every later rendering of it).</p>")
    from opslab.report import charts

    figures = []
    (bars, size), fills = _bars(folder, meta), _fills(folder)
    where = "Dataset bars given to the engine"
    if meta.get("engine_kind") == "node" and fills:
        # A live node's fills carry wall-clock time, the bars the dataset's: one axis, the dataset's.
        points = _bars_seen(folder)
        if bars and points:
            fills = _on_bars(fills, bars, size, points)
            where = ("Dataset bars the venue replayed to the node, on the dataset's clock; each fill is drawn at its own price on the "
                     "bar the node was trading against when it filled (its wall-clock time against the bars_seen count of the "
                     "node's heartbeats, so within a bar or so)")
        else:
            where, fills = ("Dataset bars the venue replayed to the node; its fills are not drawn: without heartbeats nothing links "
                            "their wall-clock time to a bar"), []
    if bars:
        entries, exits = charts.entries_and_exits(fills)
        figures.append(_figure("price", charts.price_with_trades(bars, fills, f"{spec.get('instrument', '')} close price, {len(bars)} bars"),
                               f"{where}; ▲ entry fills ({len(entries)}), ▼ exit fills ({len(exits)})."))
    if fills:
        start = bars[0].ts if bars else fills[0].ts
        end = bars[-1].ts if bars else fills[-1].ts
        figures.append(_figure("position", charts.position_over_time(fills, start, end),
                               "Net base quantity held after each fill (orders of this run; positive is long)."))
    timeline = _timeline_events(folder)
    if timeline:
        figures.append(_figure("lifecycle", charts.lifecycle_timeline(*timeline),
                               "Lifecycle states and kill switch checks in journal order; a cross is a start the kill switch blocked."))
    if not figures:
        return ""
    return _section("charts", "Charts", "\n".join(figures))


def _timeline_events(folder: Path) -> tuple[list[Any], list[tuple[int, int]]] | None:
    from opslab.report.charts import Event

    journal = _journal(folder)
    if not any(str(e.get("event", "")).startswith("paper_") for e in journal):
        return None
    events, steps = [], []
    for rec in journal:
        name, seq, data = str(rec.get("event", "")), int(rec.get("seq") or 0), rec.get("data") or {}
        if name == "paper_step":
            steps.append((seq, int(data.get("step") or 0)))
        elif name.startswith("paper_"):
            state = name[len("paper_"):]
            events.append(Event(seq, "lifecycle", f"{state} (attempt {data.get('attempt', '?')})" if state == "created" else state, state))
        elif name == "kill_switch_checked":
            state = "released" if data.get("kill_switch") == "released" else "engaged"
            events.append(Event(seq, "kill switch", state, state))
        elif name.endswith("_blocked"):
            events.append(Event(seq, "kill switch", f"blocked: {name[:-len('_blocked')]}", "blocked"))
    return events, steps


def _safety(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    seen = meta.get("safety")
    if not seen:
        return ""
    kind = {"engaged": ("ENGAGED", "bad"), "released": ("released", "good")}.get(seen.get("kill_switch"), ("UNREADABLE (treated as engaged)", "bad"))
    rows = [("kill switch", _badge(*kind)), ("since", esc(seen.get("since") or "-")), ("reason", esc(seen.get("reason") or "-"))]
    life = _json(folder, "paper_lifecycle")
    if life:
        rows += [("paper lifecycle", esc(life.get("state"))), ("stop reason", esc(life.get("stop_reason") or "-")),
                 ("orders cancelled on stop", esc(", ".join(life.get("cancelled_orders") or []) or "-"))]
    text = "<p>The kill switch as this run last saw it (<code>tc killswitch status</code> shows it now).</p>"
    return _section("safety", "Safety status", text + _table(rows))


def _reconciliation(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    doc = _json(folder, "reconciliation")
    if not doc:
        return ""
    summary = doc.get("summary", {})
    status = str(doc.get("status", ""))
    head = (f"<p>{_badge(status.upper(), 'good' if status == 'match' else 'bad')} {esc(summary.get('matches'))}/{esc(summary.get('checks'))} "
            f"checks match (expected <code>{esc(doc.get('expected_file'))}</code>, observed <code>{esc(doc.get('observed_source'))}</code>). "
            "Mismatching rows are highlighted.</p>")
    checks = doc.get("checks", [])
    rows = [[f"<td>{esc(c.get('kind'))}</td>", f"<td>{esc(c.get('key'))}</td>", f"<td>{esc(c.get('field'))}</td>",
             f"<td class=\"num\">{esc(c.get('expected'))}</td>", f"<td class=\"num\">{esc(c.get('observed'))}</td>",
             f"<td class=\"num diff\">{esc(c.get('difference') or '-')}</td>", f"<td class=\"num\">{esc(c.get('tolerance') or '-')}</td>",
             f"<td>{esc(c.get('status'))}</td>"] for c in checks]
    grid = _grid(["kind", "key", "field", "expected", "observed", "difference", "tolerance", "status"], rows,
                 ["mismatch" if c.get("status") == "mismatch" else "" for c in checks])
    return _section("reconciliation", "Reconciliation", head + grid)


def _cache_database(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    doc = _json(folder, "node_cache_db")
    if not doc:
        return ""
    db, before, after = doc.get("database", {}), doc.get("before") or {}, doc.get("after")
    counts_before, counts_after = before.get("key_counts", {}), (after or {}).get("key_counts", {})
    names = sorted(set(counts_before) | set(counts_after))
    head = (f"<p>NautilusTrader's cache database ({esc(db.get('type'))}, "
            f"{'started by tc under node/cache_db/' if db.get('managed') else 'given by --cache-db-url'}; flush_on_start "
            f"{esc(str(db.get('flush_on_start')).lower())}): keys by collection when this start of the node began and when it stopped.</p>")
    rows = [[f"<td>{esc(n)}</td>", f"<td class=\"num\">{esc(counts_before.get(n, 0))}</td>",
             f"<td class=\"num\">{esc(counts_after.get(n, 0) if after else '-')}</td>"] for n in names]
    body = head + _grid(["collection", "before", "after"], rows)
    comparison = doc.get("comparison") or {}
    if comparison:
        def cell(value: Any) -> str:
            return esc(", ".join(value) or "none") if isinstance(value, list) else esc(value)

        items = list(comparison.items())
        body += "<p>Node, cache database and venue when the node stopped. Disagreements are highlighted.</p>" + _grid(
            ["item", "node", "cache database", "venue", "agree"],
            [[f"<td>{esc(name)}</td>", f"<td>{cell(i.get('node'))}</td>", f"<td>{cell(i.get('cache_db'))}</td>", f"<td>{cell(i.get('venue'))}</td>",
              f"<td>{'yes' if i.get('agree') else 'NO'}</td>"] for name, i in items],
            ["" if i.get("agree") else "mismatch" for _, i in items])
    return _section("cache-database", "Cache database", body)


def _connectivity(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    parts = []
    ready = _json(folder, "connectivity_readiness")
    if ready:
        badge = _badge("READY", "good") if ready.get("ready") else _badge("NOT READY", "bad")
        missing = f" missing {esc(', '.join(ready.get('missing') or []))}" if not ready.get("ready") else ""
        parts.append(f"<p>Readiness: {badge}{missing} for {esc(ready.get('venue'))} (names only; values are never read or written).</p>")
        parts.append(_table([(f"{p.get('role')} ({p.get('env')})", esc(p.get("state"))) for p in ready.get("placeholders", [])]))
    probe = _json(folder, "connectivity_probe")
    if probe:
        up = probe.get("outcome") == "up"
        parts.append(f"<p>Probe: {_badge('UP' if up else 'DOWN', 'good' if up else 'bad')} (loopback only; see the probe runbook when it is down).</p>")
        parts.append(_table([("target", esc(probe.get("target"))), ("outcome", esc(probe.get("outcome"))), ("HTTP status", esc(probe.get("http_status"))),
                             ("error class", esc(probe.get("error_class") or "-")), ("timeout", esc(f"{probe.get('timeout_ms')} ms"))]))
    return _section("connectivity", "Connectivity", "\n".join(parts)) if parts else ""


def _journal_section(folder: Path, meta: dict[str, Any], spec: dict[str, Any]) -> str:
    events = _journal(folder)
    if not events:
        return ""
    rows = [[f"<td class=\"num\">{esc(e.get('seq'))}</td>", f"<td>{esc(e.get('event'))}</td>"] for e in events]
    return _section("journal", "Journal", f"<details><summary>{len(events)} events</summary>{_grid(['seq', 'event'], rows)}</details>")


SECTIONS = [_status, _overview, _execution, _charts, _safety, _cache_database, _reconciliation, _connectivity, _journal_section]


def render(folder: Path) -> str:
    """The whole report.html for the run in FOLDER (artifacts only)."""
    meta = _json(folder, "metadata") or {}
    spec = _json(folder, "runspec") or {}
    title = (spec.get("report") or {}).get("title") or f"Run {meta.get('run_id', folder.name)}"
    note = "Rendered by <code>tc</code> from this run's artifacts; <code>tc artifacts verify</code> checks them. report.md holds the same facts as text."
    return _page(title, note, (section(folder, meta, spec) for section in SECTIONS))


# --- drill scorecard -----------------------------------------------------------------------------


def detections(drills_dir: Path, card: dict[str, Any]) -> list[Any]:
    """Time to detect per scorecard row: from the row (scorecard.json) or else the drill's result.json."""
    from opslab.report.charts import Detection

    rows = []
    for row in card.get("drills", []):
        ttd = row.get("time_to_detect")
        if ttd is None:
            name = str(row.get("drill", ""))
            result = _json(drills_dir.parent, "drill_result", name) if name and "/" not in name and not name.startswith(".") else None
            ttd = (result or {}).get("time_to_detect") or {}
        rows.append(Detection(str(row.get("drill")), ttd.get("value"), str(ttd.get("unit", "-")), str(row.get("verdict"))))
    return rows


def render_scorecard(drills_dir: Path) -> str:
    """drills/scorecard.html from drills/scorecard.json (and each drill's result.json)."""
    from opslab.report import charts

    card = _json(drills_dir.parent, "drill_scorecard") or {}
    found = detections(drills_dir, card)
    passed, total = card.get("passed", 0), card.get("total", 0)
    head = (f"<p>{_badge(f'{passed}/{total} detected', 'good' if passed == total and total else 'bad')} "
            f"Every drill injects one failure in its own sandbox and checks the lab detected it.</p>")
    rows = []
    for row, det in zip(card.get("drills", []), found, strict=True):
        ttd = "not detected" if det.value is None else f"{det.value:g} {det.unit}"
        rows.append([f"<td>{esc(row.get('drill'))}</td>", f"<td>{esc(row.get('kind', 'lab'))}</td>",
                     f"<td>{_badge(str(row.get('verdict')), 'good' if row.get('verdict') == 'pass' else 'bad')}</td>",
                     f"<td class=\"num\">{esc(ttd)}</td>", f"<td><code>docs/{esc(row.get('runbook'))}</code></td>"])
    table = _grid(["drill", "kind", "verdict", "time to detect", "runbook"], rows)
    caption = ("Time to detect per drill, in each drill's own unit (bars, polls, requests, checks; node drills: milliseconds from the "
               "fault to the alert's delivery).")
    chart = _figure("time_to_detect", charts.time_to_detect(found), caption) if found else ""
    noted = [row for row in card.get("drills", []) if row.get("findings")]
    findings = "".join(f"<h3>{esc(row.get('drill'))}</h3><ul>" + "".join(f"<li>{esc(f)}</li>" for f in row["findings"]) + "</ul>"
                       for row in noted)
    sections = [_section("scorecard", "Scorecard", head + chart + table)]
    if noted:
        sections.append(_section("findings", "What NautilusTrader did (node drills)",
                                 "<p>Measured on the real node in each node drill; recorded as found, not hidden.</p>" + findings))
    note = ("Rendered by <code>tc drill run --all</code> / <code>--kind</code> from <code>drills/scorecard.json</code> and each drill's "
            "<code>result.json</code>.")
    return _page("Drill scorecard", note, sections)


def _matrix_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return f"<td>{_badge('no result', 'muted')}</td>"
    ttd = cell.get("time_to_detect") or {}
    value = "not detected" if ttd.get("value") is None else f"{ttd['value']:g} {ttd.get('unit', '')}"
    alert = (cell.get("alert") or {}).get("alertname")
    findings = "".join(f"<li>{esc(f)}</li>" for f in cell.get("findings") or [])
    return (f"<td>{_badge(str(cell.get('verdict')), 'good' if cell.get('verdict') == 'pass' else 'bad')} {esc(value)}"
            f"{f'<br><code>{esc(alert)}</code>' if alert else ''}"
            f"{f'<details><summary>findings</summary><ul>{findings}</ul></details>' if findings else ''}</td>")


def render_matrix(doc: dict[str, Any]) -> str:
    """drills/matrix.html from a drills/matrix.json document: drill x engine, changed rows marked."""
    engines = [row["engine"] for row in doc.get("engines", [])]
    summary = doc.get("summary", {})
    changed = summary.get("changed", 0)
    head = (f"<p>{_badge(f'{changed} changed', 'warn' if changed else 'good')} "
            + " ".join(_badge(f"{engine}: {summary.get('passed', {}).get(engine, 0)}/{summary.get('drills', 0)} detected",
                              "good" if summary.get("passed", {}).get(engine, 0) == summary.get("drills", 0) else "bad") for engine in engines)
            + "</p><p>Every node drill ran on each engine in its own environment; a row is marked when its verdict, its alert or the "
              "wording of a finding (numbers aside) differs between engines.</p>")
    rows, classes = [], []
    for drill in doc.get("drills", []):
        cells = [_matrix_cell(drill.get("cells", {}).get(engine)) for engine in engines]
        what = "".join(f"<li>{esc(line)}</li>" for line in drill.get("changes", []))
        rows.append([f"<td>{esc(drill.get('drill'))}<br><code>docs/{esc(drill.get('runbook'))}</code></td>", *cells,
                     f"<td class=\"diff\">{f'<ul>{what}</ul>' if what else 'same'}</td>"])
        classes.append("mismatch" if drill.get("changed") else "")
    table = _grid(["drill", *[f"nautilus_trader {e}" for e in engines], "what changed"], rows, classes)
    env_rows = [[f"<td>{esc(r['engine'])}</td>", f"<td><code>{esc(r['environment'])}</code></td>", f"<td>{esc(r['python'])}</td>",
                 f"<td class=\"num\">{esc(r['exit_code'])}</td>", f"<td class=\"num\">{esc(r['seconds'])} s</td>", f"<td>{esc(r['error'] or '')}</td>"]
                for r in doc.get("engines", [])]
    envs = _grid(["engine", "environment", "Python", "exit", "time", "error"], env_rows)
    note = "Rendered by <code>tc drill matrix</code> from <code>drills/matrix.json</code>."
    return _page("Drill matrix: the upgrade canary", note, [_section("matrix", "Drill x engine", head + table),
                                                          _section("engines", "Engines", envs)])
