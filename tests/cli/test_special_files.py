"""A FIFO planted under the artifacts root never hangs tc (issue 27, item 2): every open in the file layer is
non-blocking and checks the file type with fstat before a byte is read; the command that needs the file names
it and stops (exit 2; the kill switch fails closed, exit 3; verify reports it, exit 4)."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import REPO, run_tc

MINIMAL = str(REPO / "fixtures" / "specs" / "minimal.json")
TIMEOUT = 30  # a hang ends the test here (subprocess.TimeoutExpired) instead of never

# artifact -> (the commands that read it, and the exit codes each may end with when it is a FIFO)
CASES = {
    "state/kill_switch.json": [(("killswitch", "status"), {3}), (("artifacts", "verify", "--all"), {4})],
    "state/kill_switch_events.jsonl": [(("killswitch", "engage", "--reason", "x"), {2}), (("killswitch", "status"), {3}),
                                       (("artifacts", "verify", "--all"), {4})],
    "runs/minimal/journal.jsonl": [(("run", "show", "minimal"), {2}), (("run", "init", "--spec", MINIMAL), {2}),
                                   (("artifacts", "verify", "--all"), {4}), (("metrics", "dump"), {0})],
    "runs/minimal/metadata.json": [(("run", "show", "minimal"), {2}), (("artifacts", "verify", "minimal"), {2})],
    "datasets/*/bars.csv": [(("run", "init", "--spec", MINIMAL), {2}), (("artifacts", "verify", "--all"), {4})],
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("written") / "artifacts"
    for args in (("run", "init", "--spec", MINIMAL), ("killswitch", "engage", "--reason", "r"), ("killswitch", "release", "--reason", "r")):
        assert run_tc(*args, artifacts=root).code == 0
    return root


@pytest.mark.parametrize("target", sorted(CASES))
def test_a_fifo_at_each_artifact_kind_is_refused_without_blocking(written, tmp_path, target):
    for args, codes in CASES[target]:
        root = tmp_path / "artifacts"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(written, root, symlinks=True)
        path = next(root.glob(target))
        path.unlink()
        os.mkfifo(path)  # nobody ever writes it: a blocking open or read would wait for ever
        result = run_tc(*args, artifacts=root, timeout=TIMEOUT)
        assert result.code in codes, (args, result.code, result.err[-400:])
        if result.code in (2, 3):
            named = result.err + result.out
            assert str(path.relative_to(root)) in named and "Traceback" not in named, (args, named[-400:])
        assert path.exists() and not path.is_file() or result.code == 0  # refused, never replaced behind the user's back


def test_a_fifo_in_a_users_inputs_is_refused_without_blocking(tmp_path):
    root = tmp_path / "artifacts"
    csv = tmp_path / "bars.csv"
    os.mkfifo(csv)
    result = run_tc("data", "import", "--csv", str(csv), "--id", "fifo", artifacts=root, timeout=TIMEOUT)
    assert result.code == 2 and f"{csv}: is a FIFO" in result.err, result.err
    catalog = tmp_path / "catalog" / "data" / "bar" / "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
    catalog.mkdir(parents=True)
    os.mkfifo(catalog / "part-0.parquet")
    result = run_tc("data", "import", "--catalog", str(tmp_path / "catalog"), "--id", "fifo", artifacts=root, timeout=TIMEOUT)
    assert result.code == 2 and "part-0.parquet: is not a regular file" in result.err, result.err
    assert not (root / "datasets" / "fifo").exists()
