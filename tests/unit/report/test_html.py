"""report.html and drills/scorecard.html: rendered from artifacts only, self-contained, escaped, byte-stable.

The run folder here is written by hand in the artifacts' real formats (schema-valid), so every
chart has input without running NautilusTrader; tests/integration/test_browser.py renders the
pages of a real `make demo` in a real browser.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SPECS, tc_env
from opslab import contracts
from opslab.escaping import html, md, md_code
from opslab.report import html as report_html
from opslab.report import markdown

EVIL = "demo <script>alert(1)</script> | *bold* [x](http://198.51.100.1/) & `tick`\n# heading"


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, (bytes, str)):
        path.write_bytes(obj if isinstance(obj, bytes) else obj.encode())
    else:
        path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _bars_csv(n: int) -> str:
    lines = ["ts_close,open,high,low,close,volume"]
    price = 42000.0
    for i in range(n):
        close = price + (7 if i % 5 else -11)
        stamp = f"2024-01-01T{(i + 1) // 60:02d}:{(i + 1) % 60:02d}:00Z"
        lines.append(f"{stamp},{price:.2f},{max(price, close) + 3:.2f},{min(price, close) - 3:.2f},{close:.2f},1.000000")
        price = close
    return "\n".join(lines) + "\n"


def _ts(minute: int) -> str:
    return f"2024-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z"


def _journal(events: list[tuple[str, dict]]) -> str:
    return "".join(json.dumps({"seq": i, "event": name, "data": data, "run_id": "pics", "schema_version": 1}) + "\n"
                   for i, (name, data) in enumerate(events, 1))


@pytest.fixture()
def run_folder(tmp_path: Path) -> Path:
    """A paper run with fills, a lifecycle blocked once by the kill switch, and a reconciliation mismatch."""
    root = tmp_path / "artifacts"
    folder = root / "runs" / "pics"
    _write(root / "datasets" / "ds1" / "bars.csv", _bars_csv(120))
    meta = {"run_id": "pics", "status": "stopped", "engine_kind": "paper", "config_hash": "sha256:" + "0" * 64,
            "scenario": {"name": "ops_smoke_demo", "version": "1.0.0"}, "strategy": {"name": "s", "version": "1"},
            "versions": {"opslab": "0.1.0"},
            "dataset": {"dataset_id": "ds1", "fingerprint": "sha256:" + "1" * 64, "rows": 120, "first_bar_close": _ts(1), "last_bar_close": _ts(120)},
            "engine_summary": {"mode": "paper", "bars_given": 90, "counters": {"fills": 4}, "final_balances": {"USDT": "1"},
                               "open_positions": 0, "open_orders": 0},
            "safety": {"kill_switch": "released", "since": None, "reason": EVIL}}
    _write(folder / "metadata.json", meta)
    _write(folder / "runspec.json", {"description": EVIL, "instrument": "BTCUSDT", "report": {"title": ""}})
    fills = [("BUY", "0.01", 10), ("SELL", "0.01", 25), ("BUY", "0.02", 40), ("SELL", "0.02", 70)]
    _write(folder / "fills.json", {"schema_version": 1, "run_id": "pics", "fills": [
        {"trade_id": f"T{i}", "client_order_id": f"O{i}", "side": side, "quantity": qty, "price": "42010.00", "commission": "0",
         "commission_currency": "USDT", "ts_event": _ts(minute)} for i, (side, qty, minute) in enumerate(fills)]})
    _write(folder / "journal.jsonl", _journal([
        ("run_initialized", {}), ("paper_created", {"attempt": 1}), ("paper_preflight", {"attempt": 1}),
        ("kill_switch_checked", {"kill_switch": "engaged", "engaged": True}), ("kill_switch_blocked", {"reason": EVIL}),
        ("paper_blocked", {"attempt": 1}), ("paper_created", {"attempt": 2}), ("paper_preflight", {"attempt": 2}),
        ("kill_switch_checked", {"kill_switch": "released", "engaged": False}), ("paper_running", {"attempt": 2}),
        ("paper_step", {"step": 1}), ("paper_step", {"step": 2}), ("paper_stopping", {"attempt": 2}), ("paper_stopped", {"attempt": 2})]))
    _write(folder / "paper" / "lifecycle.json", {"state": "stopped", "stop_reason": EVIL, "cancelled_orders": []})
    _write(folder / "reconciliation.json", {
        "status": "mismatch", "expected_file": "expected.json", "observed_source": "final_state.json",
        "summary": {"checks": 2, "matches": 1, "mismatches": 1},
        "checks": [{"kind": "balance", "key": "USDT", "field": "total", "expected": "100", "observed": "100", "difference": "0",
                    "tolerance": "0.01", "status": "match"},
                   {"kind": "position", "key": "BTCUSDT<img src=x>", "field": "quantity", "expected": "0.01", "observed": "0.02", "difference": "0.01",
                    "tolerance": "0", "status": "mismatch"}]})
    return folder


def test_the_run_page_has_every_chart_as_inline_svg(run_folder):
    page = report_html.render(run_folder)
    charts = re.findall(r'<figure class="chart" data-chart="([a-z_]+)"><svg', page)
    assert charts == ["price", "position", "lifecycle"]
    assert "entry fills (2)" in page and "exit fills (2)" in page  # BUY/SELL pairs: two entries, two exits


def _fetching_references(page: str) -> list[str]:
    """Every tag or attribute through which a browser would fetch something (in-page #fragments allowed)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "link", "img", "iframe", "object", "embed", "video", "audio", "source", "base", "form"):
                found.append(tag)
            for name, value in attrs:
                if name.split(":")[-1] in ("src", "href", "srcset", "action", "data", "poster") and not (value or "").startswith("#"):
                    found.append(f"{tag} {name}={value}")

    Tags().feed(page)
    return found


def test_the_page_fetches_nothing_and_escapes_stored_text(run_folder):
    page = report_html.render(run_folder)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "BTCUSDT&lt;img src=x&gt;" in page
    assert _fetching_references(page) == []
    assert "url(" not in page.replace("url(#", "") and "@import" not in page
    assert "default-src 'none'" in page  # and the browser refuses any fetch anyway


def test_reconciliation_mismatch_rows_are_highlighted(run_folder):
    page = report_html.render(run_folder)
    rows = re.findall(r"<tr( class=\"mismatch\")?><td>(balance|position)</td>", page)
    assert rows == [("", "balance"), (' class="mismatch"', "position")]
    assert "MISMATCH" in page


def test_a_run_without_engine_output_draws_no_chart_and_imports_no_matplotlib(tmp_path):
    folder = tmp_path / "runs" / "bare"
    _write(folder / "metadata.json", {"run_id": "bare", "status": "initialized"})
    code = ("import sys\nfrom pathlib import Path\nfrom opslab.report import html as report_html\n"
            f"page = report_html.render(Path({str(folder)!r}))\n"
            "print('matplotlib' in sys.modules, 'data-chart' in page)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=tc_env(tmp_path))
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def _render_in_subprocess(folder: Path, seed: str) -> bytes:
    code = ("import sys\nfrom pathlib import Path\nfrom opslab.report import html as report_html\n"
            f"sys.stdout.buffer.write(report_html.render(Path({str(folder)!r})).encode())\n")
    env = tc_env(folder, PYTHONHASHSEED=seed, MPLCONFIGDIR=str(folder.parent / f"mpl-{seed}"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_the_page_is_byte_identical_across_processes(run_folder):
    """Two fresh interpreters (different hash seeds, fresh font caches) render the same bytes."""
    first, second = _render_in_subprocess(run_folder, "1"), _render_in_subprocess(run_folder, "2")
    assert first == second
    assert b"<dc:date>" not in first and b"Matplotlib v" not in first  # no date or creator metadata


def test_scorecard_page_charts_time_to_detect_and_marks_an_undetected_drill(tmp_path):
    drills = tmp_path / "drills"
    card = {"schema_version": 1, "total": 3, "passed": 2, "failed": 1, "finished_at": "2024-01-01T00:00:00Z", "drills": [
        {"drill": "stale_data", "verdict": "pass", "detected": True, "runbook": "runbooks/stale_data.md", "time_to_detect": {"value": 0, "unit": "bars"}},
        {"drill": "mismatch", "verdict": "fail", "detected": False, "runbook": "runbooks/mismatch.md", "time_to_detect": {"value": None, "unit": "checks"}},
        {"drill": "disconnect", "verdict": "pass", "detected": True, "runbook": "runbooks/disconnect.md"}]}  # an older row: from result.json
    assert contracts.errors_for("drill_scorecard", card, "scorecard.json") == []
    _write(drills / "scorecard.json", card)
    _write(drills / "disconnect" / "result.json", {"time_to_detect": {"value": 3, "unit": "requests"}})
    page = report_html.render_scorecard(drills)
    assert re.findall(r'data-chart="([a-z_]+)"><svg', page) == ["time_to_detect"]
    assert "2/3 detected" in page and "not detected" in page and "3 requests" in page and "0 bars" in page
    svg = page[page.index("<svg"):page.index("</svg>")]
    drawn = re.sub(r"<!--.*?-->", "", svg, flags=re.S)  # matplotlib names each label in an (escaped) comment
    assert "NOT detected" not in drawn and "<text" not in drawn  # glyphs are paths: labels are drawn, no font needed
    assert svg.count("<path") > 50


def test_scorecard_rows_without_time_to_detect_still_validate():
    old = {"schema_version": 1, "total": 1, "passed": 1, "failed": 0, "finished_at": "x",
           "drills": [{"drill": "mismatch", "verdict": "pass", "detected": True, "runbook": "runbooks/mismatch.md"}]}
    assert contracts.errors_for("drill_scorecard", old, "scorecard.json") == []
    old["drills"][0]["time_to_detect"] = {"value": 1, "unit": "parsecs"}
    assert contracts.errors_for("drill_scorecard", old, "scorecard.json")


@pytest.mark.parametrize("text, expected", [
    ("a | b", "a \\| b"), ("<b>x</b>", "\\<b\\>x\\</b\\>"), ("*x* _y_ `z`", "\\*x\\* \\_y\\_ \\`z\\`"),
    ("[l](u)", "\\[l\\](u)"), ("line\nbreak", "line break"), ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
    (None, "-"), ("a & b", "a \\& b"), ("0.30", "0.30"), ("- x", "- x"), ("ops_smoke_demo", "ops_smoke_demo"), ("_a_b_", "\\_a_b\\_"),
])
def test_markdown_escape(text, expected):
    assert md(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("# h", "\\# h"), ("- item", "\\- item"), ("1. item", "1\\. item"), ("> q", "\\> q"),
    ("2024-01-01", "2024-01-01"), ("plain # text", "plain # text"),
])
def test_markdown_escape_at_line_start(text, expected):
    assert md(text, line_start=True) == expected


def test_markdown_code_span_survives_backticks():
    assert md_code("a`b") == "``a`b``" and md_code("`x") == "`` `x ``" and md_code("p/final_state.json") == "`p/final_state.json`"


def test_html_escape():
    assert html('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;" and html(None) == "-"


def test_report_md_escapes_stored_text(run_folder):
    text = markdown.render(run_folder)
    assert "<script>" not in text and "\\<script\\>" in text
    reason_row = next(line for line in text.splitlines() if line.startswith("| reason |"))
    assert len(re.split(r"(?<!\\)\|", reason_row)) == 4  # two cells: the stored `|` cannot add one
    assert "\n# heading" not in text


def test_run_init_writes_report_html_listed_in_the_manifest(lab):
    assert lab("run", "init", "--spec", str(SPECS / "minimal.json")).code == 0
    folder = lab.root / "runs" / "minimal"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "report.html" in manifest["files"] and (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert lab("artifacts", "verify", "minimal").code == 0
    (folder / "report.html").write_text("tampered")
    assert lab("artifacts", "verify", "minimal").code == 4


def test_cli_fast_paths_do_not_import_matplotlib(tmp_path):
    code = ("import sys\nfrom opslab.cli import main\n"
            "for argv in (['--help'], ['spec', 'validate', sys.argv[1]]):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('matplotlib' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(SPECS / "demo.yaml")], cwd=REPO, env=tc_env(tmp_path / "a"),
                          capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stderr


def test_no_os_environ_leaks_into_the_page(run_folder, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    first = report_html.render(run_folder)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert report_html.render(run_folder) == first
    assert os.environ.get("TZ") == "Asia/Tokyo"


def test_stored_text_in_a_chart_is_never_mathtext():
    """A `$` in a title is a dollar sign: matplotlib's mathtext would raise on `$\\frac{`."""
    from datetime import datetime, timezone

    from opslab.report import charts

    bars = [charts.Bar(datetime(2024, 1, 1, 0, i, tzinfo=timezone.utc), 1.0, 2.0, 1.5) for i in range(5)]
    svg = charts.price_with_trades(bars, [], "BTC $\\frac{1}{ --> <script>")
    assert svg.startswith("<svg") and "<script>" not in svg
    assert "-->" not in re.sub(r"<!--.*?-->", "", svg, flags=re.S)  # the label's `-->` cannot end matplotlib's comment early


def test_a_price_chart_of_many_fills_marks_one_per_time_slot_and_counts_them_all():
    """The 3,354 fills of a 100,000-bar run were 3,354 SVG markers (499 KiB of chart); past charts.MAX_MARKERS per kind
    the chart marks the first fill of each time slot, and its legend still counts every fill."""
    from datetime import datetime, timedelta, timezone

    from opslab.report import charts

    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    bars = [charts.Bar(t0 + timedelta(minutes=i), 1.0, 2.0, 1.5) for i in range(5000)]
    buys = [charts.Fill(t0 + timedelta(minutes=i), "BUY", 1.0, 1.5 + i / 1e4) for i in range(0, 5000, 2)]  # net grows: entries
    shown = charts.thin(buys, bars[0].ts, bars[-1].ts)
    assert len(shown) == charts.MAX_MARKERS and shown == sorted(shown, key=lambda f: f.ts)
    slot = (bars[-1].ts - bars[0].ts) / charts.MAX_MARKERS
    assert all(int((f.ts - t0) / slot) == i for i, f in enumerate(shown)), "the first fill of each slot"
    assert shown[0] == buys[0] and set(shown) <= set(buys)
    assert charts.thin(buys[:10], bars[0].ts, bars[-1].ts) == buys[:10], "few fills: every one marked"
    svg = charts.price_with_trades(bars, buys, "many fills")
    assert f"entry (2,500; {charts.MAX_MARKERS} marked, one per time slot)" in svg
    assert len(_plot_area_and_markers(svg)[1]) == charts.MAX_MARKERS  # the markers drawn in the plot


def _svg_of(page: str, chart: str) -> str:
    start = page.index(f'data-chart="{chart}"><svg')
    return page[start:page.index("</svg>", start)]


def _plot_area_and_markers(svg: str) -> tuple[tuple[float, float], list[float]]:
    """The axes' x range (its background patch) and the x of every scatter marker, in SVG points."""
    patch = re.search(r'<g id="patch_2">\s*<path d="M ([\d.]+) [\d.]+\s*L ([\d.]+) ', svg)
    assert patch, "no axes patch in the chart"
    plot = svg[:svg.index('<g id="legend_1">')] if '<g id="legend_1">' in svg else svg  # the legend's sample markers aside
    markers = [float(x) for group in re.findall(r'<g id="PathCollection_\d+">(.*?)</g>\s*</g>', plot, re.S)
               for x in re.findall(r'<use xlink:href="#m[0-9a-f]+" x="([-\d.]+)"', group)]
    return (float(patch.group(1)), float(patch.group(2))), markers


WALL = 1796205600.0  # 2026-12-02T10:00:00Z: the node's wall clock, years after the dataset's 2024


def _wall_iso(seconds: float, ms: bool = False) -> str:
    from datetime import datetime, timezone

    at = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z" if ms else at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture()
def node_folder(run_folder: Path) -> Path:
    """The same run as a live node: fills in wall-clock time (2026), heartbeats linking that clock to bars_seen.
    The venue replays 2 bars a second; a heartbeat every 5 s."""
    meta = json.loads((run_folder / "metadata.json").read_text())
    meta["engine_kind"] = "node"
    _write(run_folder / "metadata.json", meta)
    fills = [("BUY", "0.01", 5), ("SELL", "0.01", 12), ("BUY", "0.02", 20), ("SELL", "0.02", 60)]  # seconds after the start
    _write(run_folder / "fills.json", {"schema_version": 1, "run_id": "pics", "fills": [
        {"trade_id": f"T{i}", "client_order_id": f"O{i}", "side": side, "quantity": qty, "price": "42010.00", "commission": "0",
         "commission_currency": "USDT", "ts_event": _wall_iso(WALL + sec)} for i, (side, qty, sec) in enumerate(fills)]})
    beats = [{"seq": k + 1, "ts": "2023-11-14T22:13:20Z", "last_market_data_at": _wall_iso(WALL + 5 * k, ms=True), "bars_seen": 10 * k}
             for k in range(10)]
    _write(run_folder / "node" / "heartbeats.jsonl", "".join(json.dumps(b) + "\n" for b in beats))
    return run_folder


def test_a_node_fill_maps_to_the_bar_being_replayed_when_it_filled():
    points = [(100.0, 0), (105.0, 10), (110.0, 20)]
    assert [report_html.bar_index(points, t) for t in (90.0, 100.0, 102.5, 105.0, 108.0, 110.0, 500.0)] == [0, 0, 5, 10, 16, 20, 20]


@pytest.mark.parametrize("kind", ["paper", "node"])
def test_every_plotted_fill_lies_within_the_price_charts_time_axis(request, kind):
    folder = request.getfixturevalue("node_folder" if kind == "node" else "run_folder")
    page = report_html.render(folder)
    svg = _svg_of(page, "price")
    (left, right), markers = _plot_area_and_markers(svg)
    assert len(markers) == 4 and all(left <= x <= right for x in markers), (left, right, markers)
    ticks = " ".join(re.findall(r"<!-- (.*?) -->", svg))
    assert "2024" in ticks and "2026" not in ticks and "2027" not in ticks  # one axis: the dataset's
    if kind == "node":
        assert "on the dataset&#x27;s clock" in page or "on the dataset's clock" in page
        position = _svg_of(page, "position")
        assert "2026" not in " ".join(re.findall(r"<!-- (.*?) -->", position))


def test_node_fills_without_heartbeats_are_left_off_and_the_caption_says_why(node_folder):
    (node_folder / "node" / "heartbeats.jsonl").unlink()
    page = report_html.render(node_folder)
    _, markers = _plot_area_and_markers(_svg_of(page, "price"))
    assert markers == [] and "nothing links" in page and 'data-chart="position"' not in page


def test_the_verdicts_come_first_on_the_page(run_folder):
    page = report_html.render(run_folder)
    status = page.index('<section id="status">')
    assert status < page.index('<section id="overview">') < page.index('<section id="charts">')
    strip = page[status:page.index("</section>", status)]
    assert "STOPPED" in strip and "released" in strip and "MISMATCH" in strip and "1/2 checks match" in strip
    assert '<a href="#safety">' in strip and '<a href="#reconciliation">' in strip


LONG_DRILL = "node_stale_book_while_connected_and_rate_limited_at_startup_WW64"


def test_a_64_character_drill_name_is_drawn_whole_inside_the_chart(tmp_path):
    from opslab.report import charts

    assert len(LONG_DRILL) == 64
    drills = tmp_path / "drills"
    _write(drills / "scorecard.json", {"schema_version": 1, "total": 2, "passed": 2, "failed": 0, "finished_at": "2024-01-01T00:00:00Z",
                                       "drills": [{"drill": LONG_DRILL, "verdict": "pass", "detected": True, "runbook": "runbooks/x.md",
                                                   "time_to_detect": {"value": 3, "unit": "polls"}},
                                                  {"drill": "mismatch", "verdict": "pass", "detected": True, "runbook": "runbooks/mismatch.md",
                                                   "time_to_detect": {"value": 1, "unit": "polls"}}]})
    svg = _svg_of(report_html.render_scorecard(drills), "time_to_detect")
    label = re.search(rf"<!-- {LONG_DRILL} -->\s*<g transform=\"translate\(([-\d.]+) ", svg)
    assert label, "the full name is one label in the SVG"
    start = float(label.group(1))  # where the right-aligned tick label begins, in points
    (axes_left, _), _ = _plot_area_and_markers(svg)
    width = charts.label_width([LONG_DRILL]) * 72
    assert width > 300  # long enough that the old 1.7 inch label area would have cut it
    assert 0 <= start and start + width <= axes_left
