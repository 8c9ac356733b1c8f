"""The browser recipe: open a page from file:// in Debian's headless Chromium and report what it did.

Shared by the browser test (tests/integration/test_browser.py) and `make screenshots`, so the
pictures in docs/ are taken exactly the way the test checks them. Playwright drives the browser
over its protocol (console messages, requests, screenshots); it launches /usr/bin/chromium
(`executable_path`) and never downloads a browser of its own.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
         "--force-color-profile=srgb", "--hide-scrollbars", "--font-render-hinting=none"]
VIEWPORT = {"width": 1000, "height": 1200}


def chromium() -> str | None:
    """Path of the browser: $TC_CHROMIUM, else Debian's chromium; None when there is none."""
    env = os.environ.get("TC_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next((p for p in CHROMIUM_CANDIDATES if Path(p).is_file()), None) or shutil.which("chromium")


@dataclass
class ChartStats:
    """What one chart's pixels look like: size, share of non-background pixels, distinct colours."""

    width: int
    height: int
    inked: float
    colours: int
    paths: int


@dataclass
class PageCheck:
    """Everything the browser saw while loading one page."""

    url: str
    screenshot: bytes
    console: list[str] = field(default_factory=list)     # errors and warnings, page errors included
    requests: list[str] = field(default_factory=list)    # every request other than the page itself
    charts: dict[str, ChartStats] = field(default_factory=dict)
    sections: dict[str, bytes] = field(default_factory=dict)  # element screenshots by section id


def _stats(png: bytes, paths: int) -> ChartStats:
    from PIL import Image  # Pillow comes with matplotlib

    img = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = img.size
    grey = img.convert("L").histogram()
    inked = sum(grey[:245]) / max(1, width * height)  # pixels darker than near-white
    colours = len(img.getcolors(maxcolors=1 << 24) or [])
    return ChartStats(width, height, round(inked, 4), colours, paths)


def pixels_of(png: bytes, rgb: tuple[int, int, int]) -> int:
    """How many pixels of PNG have exactly the colour RGB."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(count for count, colour in img.getcolors(maxcolors=1 << 24) or [] if colour == rgb)


class Browser:
    """One headless Chromium with a fresh profile; open() loads a page and checks it."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def __enter__(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        self._profile = tempfile.TemporaryDirectory(prefix="tc-chromium-")
        self._pw = sync_playwright().start()
        try:
            self._context = self._pw.chromium.launch_persistent_context(
                self._profile.name, executable_path=self.executable, headless=True, args=FLAGS,
                viewport=VIEWPORT, device_scale_factor=1, offline=True, timezone_id="UTC", locale="en-US")
        except BaseException:
            self._pw.stop()
            self._profile.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._context.close()
        finally:
            self._pw.stop()
            self._profile.cleanup()

    def open(self, path: Path, sections: tuple[str, ...] = ()) -> PageCheck:
        """Load PATH from file://, wait for it to settle, screenshot it and each chart (and SECTIONS by id)."""
        url = path.resolve().as_uri()
        page = self._context.new_page()
        check = PageCheck(url, b"")
        page.on("console", lambda m: check.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: check.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: check.requests.append(r.url) if r.url != url else None)
        try:
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            for fig in page.query_selector_all("figure.chart"):
                name = fig.get_attribute("data-chart") or "?"
                svg = fig.query_selector("svg")
                png = svg.screenshot(type="png") if svg else b""
                paths = fig.eval_on_selector_all("svg path", "els => els.length")
                check.charts[name] = _stats(png, paths) if png else ChartStats(0, 0, 0.0, 0, 0)
            for section in sections:
                element = page.query_selector(f"#{section}")
                if element:
                    check.sections[section] = element.screenshot(type="png")
            check.screenshot = page.screenshot(type="png", full_page=True)
        finally:
            page.close()
        return check


    def evaluate(self, path: Path, script: str, arg: object = None) -> object:
        """Load PATH from file:// and return what the JavaScript function SCRIPT returns for ARG on it (a measurement)."""
        page = self._context.new_page()
        try:
            page.goto(path.resolve().as_uri(), wait_until="load")
            return page.evaluate(script, arg)
        finally:
            page.close()


def problems(check: PageCheck, min_inked: float = 0.02, min_colours: int = 3) -> list[str]:
    """What is wrong with a loaded page: console errors, requests, blank or missing charts."""
    found = [f"console {line}" for line in check.console] + [f"request {url}" for url in check.requests]
    for name, stats in check.charts.items():
        if stats.width < 100 or stats.height < 50:
            found.append(f"chart {name}: {stats.width}x{stats.height} px, not laid out")
        elif stats.inked < min_inked or stats.colours < min_colours:
            found.append(f"chart {name}: blank ({stats.inked:.1%} inked, {stats.colours} colours)")
    return found


def browse(executable: str | None = None) -> Browser:
    """A Browser for `with browse() as b:`; FileNotFoundError when no Chromium is installed."""
    exe = executable or chromium()
    if not exe:
        raise FileNotFoundError("no Chromium found (apt-get install chromium; .ci/run installs it) or set TC_CHROMIUM")
    return Browser(exe)
