"""Charts for report.html and the drill scorecard page, drawn by matplotlib as inline SVG.

matplotlib is imported lazily (only when a chart is drawn), so `tc --help` and `tc spec validate`
never pay for it. Output is byte-stable for the same input: the Figure API (no pyplot global
state, no GUI backend), glyphs written as paths (no font lookup in the browser, no font metadata),
a fixed svg.hashsalt for element ids, and no date or creator metadata.

Every function takes plain values read from artifacts and returns one `<svg>` element as text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

# One palette for every chart and the page's CSS (colour-blind safe pairs: blue/orange, green/red
# kept for the conventional "good/bad" only with a second cue: marker shape or a text label).
COLORS = {"price": "#4c72b0", "band": "#c6d3ea", "entry": "#1b9e77", "exit": "#d95f02", "position": "#4c72b0",
          "ok": "#2ca02c", "bad": "#d62728", "warn": "#ff7f0e", "muted": "#7f7f7f", "grid": "#dddddd"}

RC = {
    "svg.hashsalt": "opslab",        # element ids from a fixed salt, not a random uuid
    "svg.fonttype": "path",          # glyphs as paths: no font needed by the browser, none embedded by name
    "svg.image_inline": True,
    "text.parse_math": False,        # a `$` in stored text is a dollar sign, never mathtext (which can raise)
    "font.family": "DejaVu Sans",    # ships inside matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": COLORS["grid"],
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "figure.dpi": 96,
    "savefig.dpi": 96,
    "path.simplify": True,
    "timezone": "UTC",
}
MAX_POINTS = 1500  # a longer price series is bucketed (close line + low/high band) to keep the SVG small
# Fill markers per kind (entry, exit) a price chart draws at most: a 9-inch chart has room for about 150 markers side
# by side, and each marker is an SVG element (the 3,354 fills of a 100,000-bar run made the chart 499 KiB of
# report.html; 180 KiB thinned). Past this, one marker per time slot stands for the fills in it; the legend keeps
# every fill's count.
MAX_MARKERS = 300


@dataclass(frozen=True)
class Bar:
    """One dataset bar (close time, low, high, close)."""

    ts: datetime
    low: float
    high: float
    close: float


@dataclass(frozen=True)
class Fill:
    """One fill: time, side, quantity, price."""

    ts: datetime
    side: str
    quantity: float
    price: float


def _figure(width: float, height: float, left: float = 0.75, right: float = 0.2, top: float = 0.35, bottom: float = 0.6,
            hspace: float = 0.0) -> Any:
    """A Figure with fixed margins in inches (a layout engine would draw every chart twice)."""
    from matplotlib.figure import Figure  # lazy: the CLI's fast paths never import matplotlib

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height, hspace=hspace)
    return fig


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: the SVG goes inline into HTML


def _render(draw: Any, *args: Any, **kwargs: Any) -> str:
    import warnings

    import matplotlib

    with matplotlib.rc_context(RC), warnings.catch_warnings():
        # AutoDateLocator warns for some spans (5,000 one-minute bars, about 3.5 days) and then takes a 12-unit step, a
        # good axis: nothing for a user to do, so nothing printed.
        warnings.filterwarnings("ignore", message="AutoDateLocator was unable to pick an appropriate interval")
        fig = draw(*args, **kwargs)
        return _svg(fig)


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=8, tz=mdates.UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=mdates.UTC))
    ax.set_xlabel("time (UTC)")


def _bucket(bars: Sequence[Bar]) -> tuple[list[datetime], list[float], list[float], list[float]]:
    """Close, low and high per bucket, at most MAX_POINTS buckets."""
    size = max(1, -(-len(bars) // MAX_POINTS))
    ts, lows, highs, closes = [], [], [], []
    for start in range(0, len(bars), size):
        chunk = bars[start:start + size]
        ts.append(chunk[-1].ts)
        lows.append(min(b.low for b in chunk))
        highs.append(max(b.high for b in chunk))
        closes.append(chunk[-1].close)
    return ts, lows, highs, closes


def entries_and_exits(fills: Iterable[Fill]) -> tuple[list[Fill], list[Fill]]:
    """Split fills into entries (the net position grows in size) and exits (it shrinks or flips to flat)."""
    entries, exits, net = [], [], 0.0
    for fill in fills:
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        (entries if abs(net + signed) > abs(net) else exits).append(fill)
        net += signed
    return entries, exits


def thin(fills: Sequence[Fill], start: datetime, end: datetime, slots: int = MAX_MARKERS) -> list[Fill]:
    """FILLS as they are when there are at most SLOTS, else the first fill of each of SLOTS equal time slots between
    START and END that holds any (in time order)."""
    if len(fills) <= slots:
        return list(fills)
    span = max((end - start).total_seconds(), 1e-9)
    kept: dict[int, Fill] = {}
    for fill in fills:
        slot = min(slots - 1, max(0, int((fill.ts - start).total_seconds() / span * slots)))
        kept.setdefault(slot, fill)
    return [kept[k] for k in sorted(kept)]


def price_with_trades(bars: Sequence[Bar], fills: Sequence[Fill], title: str) -> str:
    """The dataset's close price (low/high band) with entry and exit fills marked."""

    def draw() -> Any:
        fig = _figure(9.0, 3.4)
        ax = fig.add_subplot()
        ts, lows, highs, closes = _bucket(bars)
        ax.fill_between(ts, lows, highs, color=COLORS["band"], linewidth=0, label="bar low-high")
        ax.plot(ts, closes, color=COLORS["price"], linewidth=0.9, label="close")
        entries, exits = entries_and_exits(fills)
        for kind, group, marker in (("entry", entries, "^"), ("exit", exits, "v")):
            if not group:
                continue
            shown = thin(group, bars[0].ts, bars[-1].ts) if bars else group
            label = f"{kind} ({len(group):,}" + (f"; {len(shown):,} marked, one per time slot)" if len(shown) < len(group) else ")")
            ax.scatter([f.ts for f in shown], [f.price for f in shown], marker=marker, s=36, color=COLORS[kind],
                       edgecolors="white", linewidths=0.5, zorder=3, label=label)
        ax.set_title(title, loc="left")
        ax.set_ylabel("price")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        _time_axis(ax)
        ax.legend(loc="upper left", ncols=4, frameon=False, fontsize=8)
        return fig

    return _render(draw)


def position_over_time(fills: Sequence[Fill], start: datetime, end: datetime) -> str:
    """Net position (signed base quantity) after each fill, as a step line from START to END."""

    def draw() -> Any:
        fig = _figure(9.0, 2.2)
        ax = fig.add_subplot()
        ts, net, level = [start], [0.0], 0.0
        for fill in fills:
            level += fill.quantity if fill.side == "BUY" else -fill.quantity
            ts.append(fill.ts)
            net.append(round(level, 12))
        ts.append(max(end, ts[-1]))
        net.append(net[-1])
        ax.step(ts, net, where="post", color=COLORS["position"], linewidth=1.1)
        ax.fill_between(ts, net, step="post", color=COLORS["position"], alpha=0.15, linewidth=0)
        ax.axhline(0, color=COLORS["muted"], linewidth=0.6)
        ax.set_title("Net position after each fill", loc="left")
        ax.set_ylabel("quantity")
        _time_axis(ax)
        return fig

    return _render(draw)


# Lifecycle state -> colour of the lane segment that starts with it.
STATE_COLORS = {"created": COLORS["muted"], "preflight": "#9467bd", "running": COLORS["price"], "stopping": COLORS["warn"],
                "stopped": COLORS["ok"], "blocked": COLORS["bad"], "failed": COLORS["bad"], "recovered": COLORS["warn"]}


@dataclass(frozen=True)
class Event:
    """One journal event placed on the timeline: its sequence number, lane and label."""

    seq: int
    lane: str  # "lifecycle" or "kill switch"
    label: str
    state: str  # lifecycle state, or engaged/released/blocked for the kill switch lane


def lifecycle_timeline(events: Sequence[Event], steps: Sequence[tuple[int, int]]) -> str:
    """The paper lifecycle by journal order: state segments, kill switch checks and blocks, steps done.

    The x axis is the journal sequence, not wall time: under SOURCE_DATE_EPOCH every event has the
    same timestamp, and the journal's order is what the lifecycle guarantees.
    """

    def draw() -> Any:
        fig = _figure(9.0, 2.6, left=0.9, top=0.3, bottom=0.5)
        ax = fig.add_subplot()
        last = max([e.seq for e in events] + [s for s, _ in steps] + [1])
        life = [e for e in events if e.lane == "lifecycle"]
        for i, ev in enumerate(life):
            end = life[i + 1].seq if i + 1 < len(life) else last + 1
            ax.barh(1, end - ev.seq, left=ev.seq, height=0.5, color=STATE_COLORS.get(ev.state, COLORS["muted"]),
                    edgecolor="white", linewidth=0.8)
            ax.annotate(ev.label, (ev.seq, 1.3), xytext=(1, 0), textcoords="offset points", fontsize=7, rotation=30,
                        ha="left", va="bottom")
        for i, ev in enumerate(e for e in events if e.lane == "kill switch"):
            color = COLORS["ok"] if ev.state == "released" else COLORS["bad"]
            marker = "x" if ev.state == "blocked" else ("o" if ev.state == "released" else "s")
            ax.scatter([ev.seq], [0], marker=marker, s=46, color=color, zorder=3)
            below = i % 2 == 0  # neighbours alternate below/above the lane so their labels never overlap
            ax.annotate(ev.label, (ev.seq, -0.25 if below else 0.25), xytext=(0, -2 if below else 2), textcoords="offset points",
                        fontsize=7, ha="center", va="top" if below else "bottom", color=color)
        if steps:
            ax.scatter([s for s, _ in steps], [1] * len(steps), marker="|", s=40, color="white", zorder=3, linewidths=1)
        ax.set_yticks([0, 1], ["kill switch", "lifecycle"])
        ax.set_ylim(-0.9, 2.3)
        ax.set_xlim(0, last + 1)
        ax.set_xlabel("journal sequence (white ticks: steps done)")
        ax.set_title("Paper lifecycle and kill switch", loc="left")
        ax.grid(axis="y", visible=False)
        return fig

    return _render(draw)


def label_width(labels: Sequence[str], size: float | None = None) -> float:
    """Width in inches of the widest of LABELS as drawn in the charts' font (RC) at SIZE points (font.size)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    prop = FontProperties(family=RC["font.family"], size=size or RC["font.size"])
    return max((TextPath((0, 0), label, prop=prop).get_extents().width / 72 for label in labels if label), default=0.0)


@dataclass(frozen=True)
class Detection:
    """One drill's time to detect (None when it was not detected), its unit and verdict."""

    drill: str
    value: float | None
    unit: str
    verdict: str


def time_to_detect(rows: Sequence[Detection]) -> str:
    """Time to detect per drill: one horizontal bar each, one panel per unit (units are not comparable)."""

    from matplotlib.ticker import MaxNLocator

    def draw() -> Any:
        units = sorted({r.unit for r in rows}) or ["-"]
        heights = [max(1, sum(r.unit == u for r in rows)) for u in units]
        height = 0.7 + 0.42 * sum(heights) + 0.55 * len(units)
        # The label area is as wide as the longest drill name (plus the tick and its pad), the bars keep 6 inches:
        # a long name widens the figure (the page scales it to fit) instead of being cut at the left edge.
        left = max(1.7, label_width([r.drill for r in rows]) + 0.25)
        fig = _figure(left + 7.3, height, left=left, top=0.35, bottom=0.5, hspace=0.55 * len(units) / max(1, 0.42 * sum(heights)))
        grid = fig.add_gridspec(len(units), 1, height_ratios=heights)
        for i, unit in enumerate(units):
            ax = fig.add_subplot(grid[i])
            mine = [r for r in rows if r.unit == unit]
            names = [r.drill for r in mine]
            top = max([r.value or 0 for r in mine] + [1])
            for y, r in enumerate(mine):
                if r.value is None:
                    ax.barh(y, top, color="none", edgecolor=COLORS["bad"], hatch="//", linewidth=0.8)
                    ax.text(top * 0.02, y, "NOT detected", va="center", fontsize=8, color=COLORS["bad"])
                else:
                    color = COLORS["ok"] if r.verdict == "pass" else COLORS["bad"]
                    ax.barh(y, r.value, color=color, height=0.6)
                    ax.text(r.value + top * 0.01, y, f"{r.value:g} {unit}", va="center", fontsize=8)
            if all(float(r.value).is_integer() for r in mine if r.value is not None):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 polls
            ax.set_yticks(range(len(mine)), names)
            ax.invert_yaxis()
            ax.set_xlim(0, top * 1.25)
            ax.set_xlabel(unit)
            ax.grid(axis="y", visible=False)
            if i == 0:
                ax.set_title("Time to detect per drill (lower is better; each panel in its own unit)", loc="left")
        return fig

    return _render(draw)
