"""Charts on request (issue 31): a backtest over 20,000 bars writes report.html without its charts and says how to
draw them; `tc report RUN --charts` draws them once, records that in the run's journal, and every later rendering keeps
them. A run at or under the bound draws them with the run, and --charts has nothing to do."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import SPECS, run_tc


def _backtest(tmp_path: Path, root: Path, run_id: str, bars: int) -> Path:
    data = yaml.safe_load((SPECS / "demo.yaml").read_text())
    data["run_id"], data["dataset"]["bars"] = run_id, bars
    spec = tmp_path / f"{run_id}.yaml"
    spec.write_text(yaml.safe_dump(data))
    done = run_tc("run", "backtest", "--spec", str(spec), artifacts=root)
    assert done.code == 0, done.err
    return root / "runs" / run_id


def test_a_large_run_draws_its_charts_on_request_and_keeps_them(tmp_path: Path):
    root = tmp_path / "artifacts"
    run = _backtest(tmp_path, root, "big", 20_001)
    page = (run / "report.html").read_text()
    assert "data-chart=" not in page and "its 20,001 bars are over 20,000" in page and "tc report big --charts" in page
    journal_before = (run / "journal.jsonl").read_bytes()

    check = run_tc("report", "big", "--charts", "--check", artifacts=root)
    assert check.code == 0 and "would be re-rendered with the charts of its 20,001 bars" in check.out, check.out + check.err
    assert (run / "journal.jsonl").read_bytes() == journal_before and (run / "report.html").read_text() == page

    drawn = run_tc("report", "big", "--charts", artifacts=root)
    assert drawn.code == 0 and "(charts drawn)" in drawn.out, drawn.err
    page = (run / "report.html").read_text()
    assert 'data-chart="price"' in page and 'data-chart="position"' in page and "Not drawn with the run" not in page
    assert (run / "journal.jsonl").read_text().count('"report_charts_requested"') == 1

    for again in (["report", "big", "--charts"], ["report", "big"]):  # converged: the journal says the page draws them
        done = run_tc(*again, artifacts=root)
        assert done.code == 0 and done.out.startswith("ok:"), done.out + done.err
    assert (run / "report.html").read_text() == page
    verified = run_tc("artifacts", "verify", "big", artifacts=root)
    assert verified.code == 0, verified.out + verified.err


def test_a_run_at_the_bound_draws_its_charts_with_the_run(tmp_path: Path):
    root = tmp_path / "artifacts"
    run = _backtest(tmp_path, root, "small", 20_000)
    assert 'data-chart="price"' in (run / "report.html").read_text()
    done = run_tc("report", "small", "--charts", artifacts=root)
    assert done.code == 0 and done.out.startswith("ok:"), done.out + done.err
    assert '"report_charts_requested"' not in (run / "journal.jsonl").read_text()
