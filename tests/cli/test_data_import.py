"""Bring your own data: `tc data import` and `tc data check` (no NautilusTrader involved)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, tc_env, tree_bytes

CSV = FIXTURES / "data" / "btcusdt-1m-binance-format.csv"
BINANCE = ("--map", "ts_close=open_time", "--time-is", "open")


def _import(lab, path: Path, dataset: str = "mine", *extra: str, **env: str):
    return lab("data", "import", "--csv", str(path), "--id", dataset, *BINANCE, "--json", *extra, **env)


def _lines() -> list[list[str]]:
    return [line.split(",") for line in CSV.read_text().splitlines()]


def _write(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


def test_fixture_csv_imports_clean_and_converges(lab):
    first = _import(lab, CSV)
    assert first.code == 0, first.err
    doc = first.json()
    assert doc["status"] == "changed" and doc["data"]["quality"]["passed"] is True
    assert [c["count"] for c in doc["data"]["quality"]["checks"]] == [0] * 7
    manifest = json.loads((lab.root / "datasets/mine/manifest.json").read_text())
    assert manifest["kind"] == "imported" and manifest["rows"] == 180
    # open_time + one minute is the close time the lab stamps bars with
    assert manifest["first_bar_close"] == "2024-03-01T00:01:00Z" and manifest["last_bar_close"] == "2024-03-01T03:00:00Z"
    before = tree_bytes(lab.root)
    again = _import(lab, CSV)
    assert again.code == 0 and again.json()["status"] == "ok"
    assert tree_bytes(lab.root) == before
    assert lab("artifacts", "verify", "--all").code == 0


def test_import_check_writes_nothing(lab):
    result = _import(lab, CSV, "mine", "--check")
    assert result.code == 0 and result.json()["status"] == "changed"
    assert not lab.root.exists()


def _swap(rows, i):
    rows[i], rows[i + 1] = rows[i + 1], rows[i]


def _dup(rows, i):
    rows[i] = list(rows[i - 1])


def _drop(rows, i):
    del rows[i]


def _ohlc(rows, i):
    rows[i][3] = str(float(rows[i][1]) + 50)  # low above open


def _zero_price(rows, i):
    for col in (1, 2, 3, 4):
        rows[i][col] = "0"
    rows[i + 1][1] = "0"  # the next bar opens where this one closed
    rows[i + 1][3] = "0"


def _zero_volume(rows, i):
    for k in range(4):
        rows[i + k][5] = "0"


def _spike(rows, i):
    rows[i][4] = str(round(float(rows[i][4]) * 1.2, 2))
    rows[i][2] = rows[i][4]  # high follows the close, so the bar stays consistent


# each quality problem -> the checks that must catch it (and no others)
PROBLEMS = {
    "non-monotonic": (_swap, {"non_monotonic", "gaps"}),  # going back in time, then jumping two bars forward
    "duplicate": (_dup, {"duplicate_timestamps", "gaps"}),
    "gap": (_drop, {"gaps"}),
    "ohlc": (_ohlc, {"ohlc_inconsistent"}),
    "non-positive": (_zero_price, {"non_positive_prices"}),
    "zero-volume": (_zero_volume, {"zero_volume_runs"}),
    "outlier": (_spike, {"outliers"}),
}


@pytest.mark.parametrize("case", sorted(PROBLEMS))
def test_each_quality_problem_is_caught_by_its_check(lab, tmp_path, case):
    mutate, expected = PROBLEMS[case]
    rows = _lines()
    mutate(rows, 60)
    result = _import(lab, _write(tmp_path, rows))
    assert result.code == 4, result.err
    doc = result.json()
    assert set(doc["data"]["quality"]["failed_checks"]) == expected
    quality = json.loads((lab.root / "datasets/mine/quality.json").read_text())
    assert quality["passed"] is False and set(quality["failed_checks"]) == expected
    # the same verdict from `tc data check`, and a threshold that tolerates the findings passes
    assert lab("data", "check", "mine").code == 4
    tolerant = [a for name in expected for a in ("--max", f"{name}=10")]
    assert lab("data", "check", "mine", *tolerant).code == 0


def test_outlier_bound_is_configurable(lab, tmp_path):
    rows = _lines()
    _spike(rows, 60)
    assert _import(lab, _write(tmp_path, rows)).code == 4
    spike = json.loads((lab.root / "datasets/mine/quality.json").read_text())["checks"][6]["examples"][0]["detail"]
    z = float(spike.rsplit(" ", 1)[-1])
    assert lab("data", "check", "mine", "--zscore", str(abs(z) + 1)).code == 0
    assert lab("data", "check", "mine", "--zscore", str(abs(z) - 1)).code == 4


def test_synthetic_dataset_can_be_checked(lab):
    assert lab("data", "prepare", "--spec", str(FIXTURES / "specs" / "demo.yaml")).code == 0
    dataset = next((lab.root / "datasets").iterdir()).name
    result = lab("data", "check", dataset, "--json")
    assert result.code == 0 and result.json()["data"]["quality"]["rows"] == 1440
    assert lab("artifacts", "verify", "--all").code == 0


@pytest.mark.parametrize("content, needle", [
    ("time,open,high,low,close,volume\n1,2,3,1,2,1\n", "no column 'ts_close' (for ts_close)"),
    ("ts_close,open,high,low,close,volume\n2024-01-01T00:01:00Z,1,2,x,1,1\n", "line 2: column low: 'x' is not a number"),
    ("ts_close,open,high,low,close,volume\nyesterday,1,2,1,1,1\n", "line 2: column ts_close: 'yesterday' is not a time"),
    ("ts_close,open,high,low,close,volume\n", "has a header but no rows"),
    ("ts_close,open,high,low,close,volume\n2024-01-01T00:01:00Z,1,2\n", "line 2: 3 fields, the header has 6"),
])
def test_bad_csv_is_exit_2_one_line_nothing_written(lab, tmp_path, content, needle):
    path = tmp_path / "in.csv"
    path.write_text(content)
    result = lab("data", "import", "--csv", str(path), "--id", "bad")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert needle in result.err and str(path) in result.err
    assert not lab.root.exists()


@pytest.mark.parametrize("argv, needle", [
    (("--id", "../up"), "dataset id '../up'"),
    (("--id", "ok", "--map", "price=close"), "--map 'price=close'"),
    (("--id", "ok", "--instrument", "ETHUSDT"), "--instrument 'ETHUSDT'"),
])
def test_bad_import_options_are_exit_2(lab, argv, needle):
    result = lab("data", "import", "--csv", str(CSV), *argv)
    assert result.code == 2 and needle in result.err
    assert not lab.root.exists()


def test_same_id_from_other_input_needs_force(lab, tmp_path):
    assert _import(lab, CSV).code == 0
    rows = _lines()
    _drop(rows, 10)
    other = _write(tmp_path, rows)
    refused = _import(lab, other)
    assert refused.code == 2 and "already exists from other input" in refused.err
    assert _import(lab, other, "mine", "--force", "--max", "gaps=1").code == 0


def test_data_check_of_an_unknown_dataset_is_exit_2(lab):
    assert _import(lab, CSV).code == 0
    result = lab("data", "check", "nope")
    assert result.code == 2 and "datasets/nope/manifest.json" in result.err


def test_check_never_imports_nautilus(tmp_path):
    """An import writes the dataset's catalog with NautilusTrader's writer; the quality checks need no engine."""
    import subprocess
    import sys

    from conftest import REPO, tc_env

    env = tc_env(tmp_path / "a")
    subprocess.run([sys.executable, "-m", "opslab", "data", "import", "--csv", str(CSV), "--id", "x", "--map", "ts_close=open_time",
                    "--time-is", "open"], cwd=REPO, env=env, check=True, capture_output=True)
    code = ("import sys, json\nfrom opslab.cli import main\n"
            "b = main(['data', 'check', 'x'])\n"
            "print(json.dumps([b, sorted(m for m in sys.modules if m.startswith('nautilus_trader'))]), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == [0, []]


@pytest.mark.parametrize("name", ["quality.json", "bars.csv"])
def test_a_linked_dataset_file_is_refused_and_its_target_untouched(lab, tmp_path, name):
    assert _import(lab, CSV).code == 0
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"not yours\n")
    link = lab.root / "datasets" / "mine" / name
    link.unlink()
    link.symlink_to(victim)
    result = lab("data", "check", "mine")
    assert result.code == 2 and "symlink" in result.err and result.err.count("\n") == 1, result.err
    assert victim.read_bytes() == b"not yours\n"


def test_oversized_csv_is_refused_before_parsing(lab, tmp_path):
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:
        fh.truncate(257 << 20)  # sparse: larger than the 256 MiB cap, costs no disk
    result = lab("data", "import", "--csv", str(big), "--id", "big")
    assert result.code == 2 and "larger than" in result.err
    assert not lab.root.exists()


def test_data_check_with_check_changes_nothing(lab, tmp_path):
    rows = _lines()
    _drop(rows, 30)
    assert _import(lab, _write(tmp_path, rows)).code == 4
    before = tree_bytes(lab.root)
    planned = lab("data", "check", "mine", "--max", "gaps=1", "--check", "--json")
    assert planned.code == 0 and planned.json()["status"] == "changed"  # the verdict would change; nothing written
    assert tree_bytes(lab.root) == before


@pytest.mark.parametrize("kind", ["backtest", "node"])
def test_every_run_kind_refuses_a_dataset_whose_quality_record_was_edited(lab, tmp_path, kind):
    import yaml

    from conftest import SPECS

    assert _import(lab, CSV).code == 0
    quality = lab.root / "datasets/mine/quality.json"
    quality.write_text(json.dumps({**json.loads(quality.read_text()), "passed": False}))  # an edit the seal no longer covers
    spec = yaml.safe_load((SPECS / ("demo.yaml" if kind == "backtest" else "node-demo.yaml")).read_text())
    spec.update(run_id=f"edited-{kind}", dataset={"kind": "imported", "id": "mine"})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    before = tree_bytes(lab.root)
    result = lab("run", kind, "--spec", str(path), TC_BINANCE_API_KEY="k" * 64, TC_BINANCE_API_SECRET="s" * 64)
    assert result.code == 2, result.out + result.err
    assert "quality.json" in result.err and "does not verify" in result.err and len(result.err.strip().splitlines()) == 1
    assert tree_bytes(lab.root) == before, "nothing of the run written"


def test_progress_goes_to_stderr_on_a_terminal_or_when_asked_and_stdout_keeps_the_result(lab):
    quiet = _import(lab, CSV, "quiet")
    assert quiet.code == 0 and quiet.err == ""  # not a terminal: nothing but the result
    told = _import(lab, CSV, "told", TC_PROGRESS="1")
    assert told.code == 0 and told.json()["status"] == "changed"
    assert told.err.splitlines() == ["import: checking 1 file(s), 0 MiB ...", "import: writing 180 rows ...",
                                     "import: writing the engine's catalog ...", "import: checking quality ..."]


def test_progress_shows_on_a_real_terminal(tmp_path):
    env = tc_env(tmp_path / "artifacts")
    env.pop("TC_PROGRESS", None)
    main, other = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "opslab", "data", "import", "--csv", str(CSV), "--id", "tty", *BINANCE],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=other, timeout=300)
        os.close(other)
        other = -1
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other side is closed: everything was read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        if other != -1:
            os.close(other)
    assert proc.returncode == 0 and b"import: checking quality ..." in seen
    assert proc.stdout.decode().startswith("changed: imported dataset tty")
