"""The benchmark history (benchmarks/history.py, schemas/bench_run.schema.json): what moved beyond the noise, the
bounded atomic file, the generated docs block, and the harness's figure records. In-process; no benchmark runs."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import harness

from benchmarks import history


def fig(figure, value, baseline=None, noise=None, unit="s", benchmark="foundation", rounds=3):
    return {"benchmark": benchmark, "figure": figure, "unit": unit, "value": value, "baseline": baseline,
            "ratio": None if baseline is None else value / baseline, "rounds": rounds, "noise": noise}


def run(*figures, mode="quick", nt="1.221.0", started="2025-01-01T00:00:00Z", settings=None):
    return {"schema_version": 1, "mode": mode, "started_at": started, "seconds": 100.0, "commit": "abc1234", "dirty": False,
            "engine": {"nautilus_trader": nt, "python": "3.11.2"}, "machine": {"cpus": 2, "load_start": 1.0, "load_end": 1.5},
            "settings": {"TC_BENCH_ROUNDS": "3"} if settings is None else settings,
            "benchmarks": [{"name": "foundation", "status": "ok", "seconds": 10.0, "skipped": []}], "figures": list(figures)}


def test_a_ratio_moved_within_its_noise_is_not_reported_and_beyond_it_is():
    before = run(fig("cli_start.wall", 1.0, 10.0, noise=0.10))  # ratio 0.100, 10 % spread: the limit is 20 %
    within = run(fig("cli_start.wall", 1.15, 10.0, noise=0.08))  # +15 %
    beyond = run(fig("cli_start.wall", 1.30, 10.0, noise=0.08))  # +30 %
    assert history.what_moved(before, within).moved == []
    moved = history.what_moved(before, beyond).moved
    assert [(m.key, m.what, round(m.change, 3), m.limit) for m in moved] == [("foundation/cli_start.wall", "ratio", 0.3, 0.2)]
    assert history.report(before, within)[1:] == ["  nothing moved beyond the noise (1 figures compared)"]
    lines = history.report(before, beyond)
    assert "foundation/cli_start.wall (ratio)" in lines[2] and "+30.0 %" in lines[2] and "±20.0 %" in lines[2]


def test_the_larger_noise_of_the_two_runs_and_the_five_percent_floor_set_the_limit():
    assert history.threshold(0.01, 0.2) == 0.4
    assert history.threshold(None, None) == history.FLOOR == 0.05
    quiet = run(fig("series.100_runs", 1000, unit="series", noise=None))
    assert history.what_moved(quiet, run(fig("series.100_runs", 1040, unit="series"))).moved == []  # +4 %
    assert len(history.what_moved(quiet, run(fig("series.100_runs", 1060, unit="series"))).moved) == 1  # +6 %
    # the noisier earlier run widens the limit
    noisy = run(fig("cli_start.wall", 1.0, 10.0, noise=0.5))
    assert history.what_moved(noisy, run(fig("cli_start.wall", 1.8, 10.0, noise=0.01))).moved == []


def test_the_ratio_is_compared_not_the_value_when_there_is_a_baseline():
    before = run(fig("backtest.wall", 10.0, 10.0, noise=0.01))
    slower_machine = run(fig("backtest.wall", 20.0, 20.0, noise=0.01))  # both sides twice as slow: the ratio held
    assert history.what_moved(before, slower_machine).moved == []


def test_only_a_run_of_the_same_mode_engine_profile_and_settings_is_compared():
    old_full = run(fig("a.wall", 1, 2), mode="full")
    other_engine = run(fig("a.wall", 1, 2), nt="1.231.0")
    other_settings = run(fig("a.wall", 1, 2), settings={"TC_BENCH_ROUNDS": "5"})
    same = run(fig("a.wall", 1, 2), started="2025-01-02T00:00:00Z")
    now = run(fig("a.wall", 5, 2), started="2025-01-03T00:00:00Z")
    assert history.previous([old_full, other_engine, other_settings], now) is None
    assert history.previous([old_full, same, other_engine, other_settings], now) is same
    assert "no earlier quick run on nautilus_trader 1.221.0" in history.report(None, now)[0]


def test_new_and_vanished_figures_are_listed():
    before = run(fig("a.wall", 1, 2), fig("gone.wall", 1, 2))
    now = run(fig("a.wall", 1, 2), fig("fresh.wall", 1, 2), fig("b.peak_rss", 1, 2, unit="MiB", benchmark="import"))
    moves = history.what_moved(before, now)
    assert (moves.compared, moves.new, moves.vanished) == (1, ["foundation/fresh.wall", "import/b.peak_rss"], ["foundation/gone.wall"])
    lines = history.report(before, now)
    assert "  new: foundation/fresh.wall, import/b.peak_rss" in lines and "  vanished: foundation/gone.wall" in lines


def test_a_figure_that_changed_its_unit_is_not_compared():
    moves = history.what_moved(run(fig("a", 1.0, unit="s")), run(fig("a", 1000.0, unit="ms")))
    assert (moves.moved, moves.new, moves.vanished) == ([], ["foundation/a"], ["foundation/a"])


def test_append_keeps_the_newest_runs_writes_atomically_and_validates(tmp_path):
    path = tmp_path / "results" / "history.jsonl"
    for i in range(5):
        before = history.append(path, run(fig("a.wall", 1 + i, 2), started=f"2025-01-0{i + 1}T00:00:00Z"), keep=3)
        assert len(before) == min(i, 3)
    runs = history.load(path)
    assert [r["started_at"][:10] for r in runs] == ["2025-01-03", "2025-01-04", "2025-01-05"]
    assert os.listdir(path.parent) == ["history.jsonl"]  # no temporary file left
    assert all(json.loads(line) for line in path.read_text().splitlines())
    bad = run(fig("a.wall", 1, 2))
    bad["mode"] = "fast"
    with pytest.raises(history.HistoryError, match="not recorded: the new run: /mode"):
        history.append(path, bad)
    twice = run(fig("a.wall", 1, 2), fig("a.wall", 1, 2))
    with pytest.raises(history.HistoryError, match="foundation/a.wall recorded twice"):
        history.append(path, twice)
    assert len(history.load(path)) == 3


@pytest.mark.parametrize("content, says", [
    ("{not json\n", "line 1 is not JSON"),
    ('{"schema_version": 1}\n', "line 1: /: missing required field"),
])
def test_a_broken_history_is_one_clear_line_and_is_left_alone(tmp_path, content, says):
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps(run()) + "\n" + content)
    content = path.read_text()
    with pytest.raises(history.HistoryError) as caught:
        history.append(path, run(fig("a.wall", 1, 2)))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and says.replace("line 1", "line 2") in message
    assert path.read_text() == content


def test_an_oversized_history_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps(run()) + "\n")
    monkeypatch.setattr(history, "MAX_BYTES", 100)
    with pytest.raises(history.HistoryError, match="bytes, more than the 100 a history may hold"):
        history.load(path)


def test_the_docs_block_shows_the_newest_full_run_per_engine_else_a_quick_one_marked():
    runs = [run(fig("a.wall", 1, 2), mode="full", started="2025-01-01T00:00:00Z"),
            run(fig("a.wall", 3, 2), mode="full", started="2025-01-02T00:00:00Z"),
            run(fig("a.wall", 9, 2), started="2025-01-03T00:00:00Z"),  # a later quick run does not replace a full one
            run(fig("a.wall", 1, 4, noise=0.031), nt="1.231.0", started="2025-01-04T00:00:00Z")]
    chosen = history.latest(runs)
    assert [(r["engine"]["nautilus_trader"], r["started_at"][:10]) for r in chosen] == [("1.221.0", "2025-01-02"), ("1.231.0", "2025-01-04")]
    text = history.render(runs)
    first, second = text.split("**nautilus_trader 1.231.0")
    assert "full run of 2025-01-02T00:00:00Z" in first and "quick run" not in first and "| 1.500 |" in first
    assert "**quick run**" in second and "| foundation | `a.wall` | 1.00 s | 4.00 s | 0.250 | 3.1 % | 3 |" in second
    assert history.render([]).startswith("No run is recorded")


def test_quick_mode_and_history_paths(monkeypatch):
    assert history.default_path("full", {}) == history.HISTORY == REPO / "benchmarks" / "results" / "history.jsonl"
    assert history.default_path("quick", {}) == history.QUICK_HISTORY
    assert str(history.default_path("full", {"TC_BENCH_HISTORY": "/x/h.jsonl"})) == "/x/h.jsonl"
    assert history.settings({"TC_BENCH_ROUNDS": "3", "TC_BENCH_FIGURES": "/tmp/f", "TC_BENCH_HISTORY": "h", "HOME": "/"}) == {"TC_BENCH_ROUNDS": "3"}
    assert set(history.QUICK) <= {"TC_BENCH_ROUNDS", "TC_BENCH_FINGERPRINT_MB", "TC_BENCH_BACKTEST_SPEC", "TC_BENCH_IMPORT_ROWS",
                                  "TC_BENCH_METRICS_RUNS", "TC_BENCH_LOAD_S", "TC_BENCH_NODE_DRILLS", "TC_BENCH_DRILL_JOBS"}
    assert (REPO / history.QUICK["TC_BENCH_BACKTEST_SPEC"]).is_file()
    from opslab.drills.registry import DRILLS

    assert all(DRILLS[name].kind == "node" for name in history.QUICK["TC_BENCH_NODE_DRILLS"].split(","))


def test_the_harness_records_figures_with_the_noise_of_the_per_round_ratios(tmp_path, monkeypatch):
    out = tmp_path / "figures.jsonl"
    monkeypatch.setenv("TC_BENCH_FIGURES", str(out))
    # round ratios of wall time 0.5, 0.6, 0.5: median 0.5, spread 0.1 -> noise 0.2; ratio of the medians 1.1 / 2.0
    harness.record_comparison("x", [(1.0, 100), (1.2, 110), (1.1, 105)], [(2.0, 50), (2.0, 50), (2.2, 52)])
    harness.record("series.1000_runs", 1331, "series")
    harness.skipped("p99 under load", "wrk is not installed")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"figure": "x.wall", "unit": "s", "value": 1.1, "baseline": 2.0, "ratio": 0.55, "rounds": 3, "noise": 0.2}
    assert lines[1]["figure"] == "x.peak_rss" and lines[1]["value"] == 110 and lines[1]["baseline"] == 52
    assert lines[2] == {"figure": "series.1000_runs", "unit": "series", "value": 1331, "baseline": None, "ratio": None, "rounds": 1, "noise": None}
    assert lines[3] == {"skipped": "p99 under load: wrk is not installed"}
    whole = run(*[{"benchmark": "metrics", **line} for line in lines[:3]])
    assert history.problems(whole, "x") == []
    assert harness.spread([1.0]) is None and harness.spread([1.0, 1.0]) == 0.0


def test_the_harness_honours_tc_bench_rounds(monkeypatch):
    monkeypatch.delenv("TC_BENCH_ROUNDS", raising=False)  # .ci/no-python.sh exports it for its quick bench
    assert harness.round_count(7) == 7
    monkeypatch.setenv("TC_BENCH_ROUNDS", "2")
    assert harness.round_count(7) == 2


def test_the_committed_history_is_valid_and_the_docs_block_is_current():
    runs = history.load(history.HISTORY)
    assert all(r["mode"] in ("full", "quick") for r in runs)
    proc = subprocess.run([sys.executable, "scripts/gen_bench_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_copy_of_a_run_compares_as_nothing_moved():
    now = run(fig("a.wall", 1, 2, noise=0.0), fig("b", 3.0, unit="ms"))
    assert history.report(copy.deepcopy(now), now)[1] == "  nothing moved beyond the noise (2 figures compared)"
