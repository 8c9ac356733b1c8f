"""The benchmark history: one JSON line per `make bench` run (schemas/bench_run.schema.json), what moved since the
previous comparable run, and the generated "Latest results" block of docs/benchmarks.md.

A run is compared only with the previous run of the same mode (full or quick), the same engine profile
(nautilus_trader and Python versions) and the same TC_BENCH_* settings. A figure's compared number is its ratio
(against the baseline measured in the same run), or its value when it has no baseline. It moved when

    |now / before - 1| > max(FACTOR x noise now, FACTOR x noise before, FLOOR)

where noise is the relative spread the run measured itself ((max - min) / median of the per-round ratios; none when
measured once). Nothing here fails on a timing: it reports.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "bench_run"
HISTORY = REPO / "benchmarks" / "results" / "history.jsonl"
QUICK_HISTORY = REPO / ".bench" / "history-quick.jsonl"
KEEP = 200  # runs a history keeps (the oldest go first)
MAX_BYTES = 8 << 20  # a history larger than this is refused (200 runs of 40 figures take about 2 MB)
FACTOR = 2.0
FLOOR = 0.05
# Quick mode (`make bench QUICK=1`, CI): small sizes and few rounds; a variable set in the environment wins.
QUICK = {"TC_BENCH_ROUNDS": "3", "TC_BENCH_FINGERPRINT_MB": "16", "TC_BENCH_BACKTEST_SPEC": "fixtures/specs/demo.yaml",
         "TC_BENCH_IMPORT_ROWS": "5000", "TC_BENCH_METRICS_RUNS": "100", "TC_BENCH_LOAD_S": "2",
         "TC_BENCH_NODE_DRILLS": "node_crash,node_kill_switch", "TC_BENCH_DRILL_JOBS": "2"}
INTERNAL = ("TC_BENCH_FIGURES", "TC_BENCH_HISTORY")  # plumbing, not settings


class HistoryError(Exception):
    """A history file that cannot be read or written; the message is one line."""


def default_path(mode: str, environ: dict[str, str] | None = None) -> Path:
    """TC_BENCH_HISTORY when set, else the committed history for full runs and .bench/'s for quick ones."""
    env = os.environ if environ is None else environ
    if env.get("TC_BENCH_HISTORY"):
        return Path(env["TC_BENCH_HISTORY"])
    return HISTORY if mode == "full" else QUICK_HISTORY


def settings(environ: dict[str, str]) -> dict[str, str]:
    """The TC_BENCH_* variables of ENVIRON that shape a run (the plumbing ones aside)."""
    return {k: v for k, v in sorted(environ.items()) if k.startswith("TC_BENCH_") and k not in INTERNAL}


def problems(run: Any, source: str) -> list[str]:
    """Schema violations of RUN, plus figures named twice."""
    from opslab import contracts

    found = contracts.errors_for(SCHEMA, run, source)
    if not found:
        keys = [(f["benchmark"], f["figure"]) for f in run["figures"]]
        found += [f"{source}: /figures: {b}/{f} recorded twice" for b, f in sorted({k for k in keys if keys.count(k) > 1})]
    return found


def load(path: Path) -> list[dict[str, Any]]:
    """The runs in PATH, oldest first ([] when it does not exist); HistoryError (one line) when it is unreadable."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    if size > MAX_BYTES:
        raise HistoryError(f"benchmark history {path}: {size:,} bytes, more than the {MAX_BYTES:,} a history may hold; move it aside")
    runs = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"benchmark history {path}: unreadable ({exc}); move it aside") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except ValueError as exc:
            raise HistoryError(f"benchmark history {path}: line {number} is not JSON ({exc.args[0]}); fix or remove it") from None
        found = problems(run, f"line {number}")
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise HistoryError(f"benchmark history {path}: {found[0]}{more}; fix or remove that line") from None
        runs.append(run)
    return runs


def append(path: Path, run: dict[str, Any], keep: int = KEEP) -> list[dict[str, Any]]:
    """Append RUN to the history at PATH, keeping its newest KEEP runs; written whole to a temporary file then renamed
    (a reader never sees half a history). Returns the runs before RUN. HistoryError when RUN or the file is invalid."""
    found = problems(run, "the new run")
    if found:
        raise HistoryError(f"benchmark run not recorded: {found[0]}")
    before = load(path)
    kept = (before + [run])[-keep:]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return before


def git_state(repo: Path = REPO) -> tuple[str, bool | None]:
    """(short commit, dirty) of REPO; ("unknown", None) without git. The history files do not count as changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"],
                                cwd=repo, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None
    return commit, bool(status.strip())


def profile(run: dict[str, Any]) -> tuple[Any, Any]:
    """The engine profile a run ran on."""
    return run["engine"]["nautilus_trader"], run["engine"]["python"]


def profile_text(run: dict[str, Any]) -> str:
    nt, py = profile(run)
    return f"nautilus_trader {nt or '(not installed)'}, Python {py}"


def previous(runs: Iterable[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any] | None:
    """The newest of RUNS that RUN may be compared with: same mode, engine profile and settings."""
    match = [r for r in runs if r["mode"] == run["mode"] and profile(r) == profile(run) and r["settings"] == run["settings"]]
    return match[-1] if match else None


def compared(figure: dict[str, Any]) -> float:
    """What is compared between runs: the ratio, or the value of a figure without a baseline."""
    return figure["ratio"] if figure["ratio"] is not None else figure["value"]


def threshold(noise_now: float | None, noise_before: float | None) -> float:
    """The relative change beyond which a figure moved."""
    return max(FACTOR * (noise_now or 0.0), FACTOR * (noise_before or 0.0), FLOOR)


@dataclass
class Move:
    key: str
    what: str  # "ratio" or the unit of a figure without a baseline
    before: float
    now: float
    change: float  # relative: now / before - 1 (inf from zero)
    limit: float


@dataclass
class Moves:
    moved: list[Move] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    compared: int = 0


def _key(figure: dict[str, Any]) -> str:
    return f"{figure['benchmark']}/{figure['figure']}"


def what_moved(before: dict[str, Any], now: dict[str, Any]) -> Moves:
    """The figures of NOW whose compared number changed from BEFORE beyond the noise, and the figures only one has.
    A figure whose unit or baseline-ness changed counts as vanished and new."""
    old = {_key(f): f for f in before["figures"]}
    cur = {_key(f): f for f in now["figures"]}
    out = Moves()
    for key, fig in cur.items():
        prev = old.get(key)
        if prev is None or prev["unit"] != fig["unit"] or (prev["ratio"] is None) != (fig["ratio"] is None):
            out.new.append(key)
            if prev is not None:
                out.vanished.append(key)
            continue
        out.compared += 1
        a, b = compared(prev), compared(fig)
        change = (b / a - 1) if a else (0.0 if b == a else float("inf"))
        limit = threshold(fig["noise"], prev["noise"])
        if abs(change) > limit:
            out.moved.append(Move(key, "ratio" if fig["ratio"] is not None else fig["unit"], a, b, change, limit))
    out.vanished += [key for key in old if key not in cur]
    return out


def number(value: float) -> str:
    """VALUE with about three significant digits, thousands separated."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def report(before: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """The lines `make bench` prints after a run: what moved since BEFORE (the previous comparable run, or None)."""
    if before is None:
        return [f"what moved: no earlier {now['mode']} run on {profile_text(now)} with these settings to compare with "
                f"({len(now['figures'])} figures recorded)"]
    moves = what_moved(before, now)
    lines = [f"what moved since the {before['mode']} run of {before['started_at']} (commit {before['commit']}) on {profile_text(now)}:"]
    if moves.moved:
        width = max(len(f"{m.key} ({m.what})") for m in moves.moved)
        lines.append(f"  {'figure':<{width}}  {'before':>9}  {'now':>9}  {'change':>9}  {'noise limit':>11}")
        for m in sorted(moves.moved, key=lambda m: -abs(m.change)):
            change = "new" if m.change == float("inf") else f"{m.change * 100:+.1f} %"
            lines.append(f"  {f'{m.key} ({m.what})':<{width}}  {number(m.before):>9}  {number(m.now):>9}  {change:>9}  {'±' + percent(m.limit):>11}")
        lines.append(f"  {len(moves.moved)} of {moves.compared} figures moved beyond the noise")
    else:
        lines.append(f"  nothing moved beyond the noise ({moves.compared} figures compared)")
    if moves.new:
        lines.append(f"  new: {', '.join(moves.new)}")
    if moves.vanished:
        lines.append(f"  vanished: {', '.join(moves.vanished)}")
    return lines


def latest(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per engine profile (in the order first seen), its newest full run, or its newest quick run when it has no full one."""
    best: dict[tuple[Any, Any], dict[str, Any]] = {}
    for run in runs:
        held = best.get(profile(run))
        if held is None or run["mode"] == "full" or held["mode"] == "quick":
            best[profile(run)] = run
    return list(best.values())


def render(runs: Iterable[dict[str, Any]], source: str = "benchmarks/results/history.jsonl") -> str:
    """The "Latest results" block of docs/benchmarks.md (without its markers)."""
    chosen = latest(runs)
    if not chosen:
        return f"No run is recorded in `{source}` yet: `make bench` writes one.\n"
    parts = []
    for run in chosen:
        machine = run["machine"]
        load = " -> ".join("-" if x is None else f"{x:.2f}" for x in (machine["load_start"], machine["load_end"]))
        dirty = " with uncommitted changes" if run["dirty"] else ""
        given = ", ".join(f"`{k}={v}`" for k, v in run["settings"].items()) or "the benchmarks' own sizes"
        head = f"**{profile_text(run)}**: "
        if run["mode"] == "quick":
            head += ("**quick run** (`make bench QUICK=1`: small sizes and few rounds, not the sizes the targets above speak of; "
                     "no full run of this profile is recorded yet) ")
        else:
            head += "full run "
        head += (f"of {run['started_at']}, commit `{run['commit']}`{dirty}, {machine['cpus']} cores, 1-minute load {load}, "
                 f"{run['seconds']:.0f} s in all; settings: {given}.")
        parts += [head, ""]
        failed = [b["name"] for b in run["benchmarks"] if b["status"] == "failed"]
        skipped = [s for b in run["benchmarks"] for s in b["skipped"]]
        if failed:
            parts += [f"Failed in this run (no figures): {', '.join(failed)}.", ""]
        if skipped:
            parts += [f"Skipped in this run: {'; '.join(skipped)}.", ""]
        parts += ["| benchmark | figure | subject | baseline | ratio | noise | rounds |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for f in run["figures"]:
            base = "-" if f["baseline"] is None else f"{number(f['baseline'])} {f['unit']}"
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.3f}"
            value = f"{number(f['value'])} {f['unit']}"
            parts.append(f"| {f['benchmark']} | `{f['figure']}` | {value} | {base} | {ratio} | {percent(f['noise'])} | {f['rounds']} |")
        parts.append("")
    return "\n".join(parts)
