"""Real browser: Debian's headless Chromium opens report.html and scorecard.html of a real flow from
file:// and must see every chart drawn, no console error and no network request.

The flow is scripts/gen_samples.py's (real NautilusTrader paper run blocked once by the kill
switch, a mismatching reconciliation, every drill); the recipe is tasklib/browser.py's, the one
`make screenshots` uses for the pictures in docs/.
"""

from __future__ import annotations

import io
import json
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration
sys.path.insert(0, str(REPO / "scripts"))

from gen_samples import MISMATCH_RUN, RUN, build_root  # noqa: E402

from tasklib import browser  # noqa: E402

CHROMIUM = browser.chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_root(tmp_path_factory.mktemp("browser") / "artifacts")


@pytest.fixture(scope="module")
def chrome():
    if CHROMIUM is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)")
    with browser.browse(CHROMIUM) as b:
        yield b


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(png)).size


def test_the_scorecard_lists_each_drills_time_to_detect(root):
    """scorecard.json copies time_to_detect from each drill's result.json; the page sits beside it."""
    card = json.loads((root / "drills" / "scorecard.json").read_text())
    assert card["total"] == len(card["drills"]) >= 7
    for row in card["drills"]:
        result = json.loads((root / "drills" / row["drill"] / "result.json").read_text())
        assert row["time_to_detect"] == result["time_to_detect"] and row["time_to_detect"]["value"] is not None
    page = (root / "drills" / "scorecard.html").read_text()
    assert all(row["drill"] in page for row in card["drills"])


@needs_chromium
def test_report_page_draws_every_chart_and_fetches_nothing(root, chrome):
    check = chrome.open(root / "runs" / RUN / "report.html")
    assert browser.problems(check) == []
    assert list(check.charts) == ["price", "position", "lifecycle"]
    for name, stats in check.charts.items():
        assert stats.width >= 600 and stats.paths > 20, (name, stats)
    width, height = _png_size(check.screenshot)
    assert width == browser.VIEWPORT["width"] and height > 2000  # the whole page, charts and tables


@needs_chromium
def test_scorecard_page_draws_time_to_detect(root, chrome):
    check = chrome.open(root / "drills" / "scorecard.html")
    assert browser.problems(check) == []
    assert list(check.charts) == ["time_to_detect"]
    assert check.charts["time_to_detect"].inked > 0.05


@needs_chromium
def test_a_mismatch_is_highlighted_on_screen(root, chrome):
    highlight = (0xFF, 0xEB, 0xE9)  # tr.mismatch's background
    check = chrome.open(root / "runs" / MISMATCH_RUN / "report.html", sections=("reconciliation",))
    assert browser.problems(check) == []
    assert browser.pixels_of(check.sections["reconciliation"], highlight) > 2000
    match = chrome.open(root / "runs" / RUN / "report.html", sections=("reconciliation",))
    assert browser.pixels_of(match.sections["reconciliation"], highlight) == 0


@needs_chromium
def test_the_checks_catch_a_broken_page(tmp_path, chrome):
    """The recipe can fail: a blank chart, a script error and a fetch are all reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><figure class="chart" data-chart="blank">'
                    '<svg width="600" height="200" xmlns="http://www.w3.org/2000/svg"></svg></figure>'
                    '<img src="http://127.0.0.1:9/pixel.png"><script>console.error("boom")</script></body></html>')
    found = browser.problems(chrome.open(page))
    assert any(p.startswith("chart blank: blank") for p in found), found
    assert any("request http://127.0.0.1:9/pixel.png" in p for p in found), found
    assert any("boom" in p for p in found), found


LABEL_BOX = """name => {
  const svg = document.querySelector('figure[data-chart="time_to_detect"] svg');
  const label = [...svg.querySelectorAll('g')].find(g => [...g.childNodes].some(n => n.nodeType === 8 && n.data.trim() === name));
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; };
  return {label: label ? box(label) : null, svg: box(svg), plot: box(svg.querySelector('#patch_2'))};
}"""


@needs_chromium
def test_a_64_character_drill_name_is_on_screen_whole(tmp_path, chrome):
    """The browser's own measure of the drawn label: inside the chart's SVG and left of the bars."""
    from opslab.report import html as report_html

    name = "node_stale_book_while_connected_and_rate_limited_at_startup_WW64"
    assert len(name) == 64
    drills = tmp_path / "drills"
    drills.mkdir()
    rows = [{"drill": d, "verdict": "pass", "detected": True, "runbook": "runbooks/x.md", "time_to_detect": {"value": v, "unit": "polls"}}
            for d, v in ((name, 3), ("mismatch", 1))]
    (drills / "scorecard.json").write_text(json.dumps({"schema_version": 1, "total": 2, "passed": 2, "failed": 0,
                                                       "finished_at": "2024-01-01T00:00:00Z", "drills": rows}))
    page = drills / "scorecard.html"
    page.write_text(report_html.render_scorecard(drills))
    box = chrome.evaluate(page, LABEL_BOX, name)
    assert box["label"], "the label group of the full name"
    (left, right), (svg_left, svg_right), (plot_left, _) = box["label"], box["svg"], box["plot"]
    assert svg_left <= left < right <= plot_left <= svg_right, box
    assert right - left > 200  # drawn at a readable size, not squeezed
