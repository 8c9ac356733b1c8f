"""Every bad input to `tc spec validate` / `tc run init`: exit 2, one line naming file and field, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import SPECS

DEMO = yaml.safe_load((SPECS / "demo.yaml").read_text())
FUTURES = yaml.safe_load((SPECS / "node-futures.yaml").read_text())


def _write(tmp_path: Path, content: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _with(**changes) -> str:
    data = {**DEMO, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None})


BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n")

CASES = {
    "empty": ("", "is empty"),
    "whitespace only": ("   \n\n", "is empty"),
    "not yaml": ("run_id: [unclosed\n", "not valid YAML"),
    "yaml list": ("- a\n- b\n", "expected a mapping"),
    "yaml scalar": ("just a string\n", "expected a mapping"),
    "invalid utf-8": (b"run_id: \xff\xfe\n", "not valid UTF-8"),
    "python tag": ("!!python/object/apply:os.system ['touch /tmp/tc-pwned']\n", "unsupported YAML tag"),
    "alias bomb": (BOMB, "anchors and aliases are not allowed"),
    "duplicate keys": ("run_id: a\nrun_id: b\n", "duplicate key 'run_id'"),
    "two documents": ("a: 1\n---\nb: 2\n", "expected exactly one"),
    "missing required": (_with(scenario=None), "missing required field 'scenario'"),
    "wrong type": (_with(dataset={**DEMO["dataset"], "bars": "many"}), "/dataset/bars: 'many' is not of type 'integer'"),
    "unknown key": (_with(colour="blue"), "unknown field(s) ('colour' was unexpected)"),
    "run_id slash": (_with(run_id="a/b"), "/run_id: 'a/b' does not match"),
    "run_id dotdot": (_with(run_id=".."), "/run_id: '..' does not match"),
    "run_id space": (_with(run_id="my run"), "/run_id: 'my run' does not match"),
    "run_id too long": (_with(run_id="r" * 65), "/run_id:"),
    "unknown scenario": (_with(scenario={"name": "no_such", "version": "1"}),
                         "/scenario/name: 'no_such' is not one of ['ops_smoke_demo', 'ops_smoke_futures']"),
    "zero bars": (_with(dataset={**DEMO["dataset"], "bars": 0}), "/dataset/bars: 0 is less than the minimum of 1"),
    "bad start": (_with(dataset={**DEMO["dataset"], "start": "yesterday"}), "/dataset/start:"),
    "misspelt field": (_with(scenaro={**DEMO["scenario"]}), "/: unknown field(s) ('scenaro' was unexpected); did you mean 'scenario'?"),
    "misspelt nested field": (_with(dataset={**DEMO["dataset"], "sed": 1}), "/dataset: unknown field(s) ('sed' was unexpected); did you mean 'seed'?"),
    # a bad tag of a tagged union: ONE line naming the allowed kinds, not one per variant that does not fit
    "misspelt dataset kind": (_with(dataset={**DEMO["dataset"], "kind": "synthetc"}),
                              "/dataset/kind: 'synthetc' is not one of ['synthetic', 'imported']; did you mean 'synthetic'?"),
    "misspelt imported kind": (_with(dataset={"kind": "importd", "id": "btc-sample"}),
                               "/dataset/kind: 'importd' is not one of ['synthetic', 'imported']; did you mean 'imported'?"),
    # USD-M Futures (issue 32): the venue lists one perpetual; the futures smoke goes short, which a Spot account cannot
    "futures of another symbol": (yaml.safe_dump({**FUTURES, "instrument": "ETHUSDT",
                                                  "dataset": {"kind": "imported", "id": "eth"}}),
                                  "/engine/node/account_type: usdt_futures trades the venue's one perpetual, BTCUSDT-PERP; "
                                  "expected instrument BTCUSDT, got ETHUSDT"),
    "futures smoke on spot": (yaml.safe_dump({**FUTURES, "engine": {**FUTURES["engine"], "node": {
                                  k: v for k, v in FUTURES["engine"]["node"].items() if k != "account_type"}}}),
                              "/scenario/name: ops_smoke_futures trades usdt_futures (it goes short); expected engine.kind node "
                              "with engine.node.account_type usdt_futures"),
    "futures smoke in a backtest": (_with(scenario={"name": "ops_smoke_futures", "version": "1.0.0"}),
                                    "/scenario/name: ops_smoke_futures trades usdt_futures"),
    # any Binance spot pair trades in a backtest or a paper run (its instrument file); a node, what the venue lists
    "node on an unlisted symbol": (yaml.safe_dump({**yaml.safe_load((SPECS / "node-ethusdt.yaml").read_text()), "instrument": "SOLUSDT"}),
                                   "/instrument: a node trades what the lab's venue lists (BTCUSDT, ETHUSDT), not SOLUSDT"),
    "lower-case symbol": (_with(instrument="solusdt", dataset={"kind": "imported", "id": "sol"}), "/instrument: 'solusdt' does not match"),
    "a balance of no currency": (_with(engine={**DEMO["engine"], "starting_balances": {"USDT": "1", "sol": "1"}}),
                                 "/engine/starting_balances: 'sol' does not match any of the regexes: '^[A-Z0-9]{2,16}$'"),
    "unknown account type": (yaml.safe_dump({**FUTURES, "engine": {**FUTURES["engine"], "node": {
                                 **FUTURES["engine"]["node"], "account_type": "coin_futures"}}}),
                             "/engine/node/account_type: 'coin_futures' is not one of ['spot', 'usdt_futures']"),
}


@pytest.mark.parametrize("command", [("spec", "validate"), ("run", "init", "--spec")], ids=["validate", "init"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(lab, tmp_path, case, command):
    content, expected = CASES[case]
    spec = _write(tmp_path, content)
    result = lab(*command, str(spec))
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {spec}"), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.err
    assert not lab.root.exists(), "a rejected spec must not create the artifacts root"
    assert not Path("/tmp/tc-pwned").exists()


def test_several_problems_one_line_each(lab, tmp_path):
    spec = _write(tmp_path, _with(run_id="a b", colour="x"))
    result = lab("spec", "validate", str(spec))
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"error: {spec}: /") for line in lines)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_spec_path_must_be_a_file(lab, tmp_path, kind):
    path = tmp_path / "nope.yaml" if kind == "missing" else tmp_path
    result = lab("spec", "validate", str(path))
    assert result.code == 2
    assert result.err.strip() == f"error: {path}: " + ("no such file (expected a spec file)" if kind == "missing" else "is a directory, expected a spec file")


def test_artifacts_root_not_writable(tmp_path):
    from conftest import run_tc

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_tc("run", "init", "--spec", str(SPECS / "demo.yaml"), artifacts=blocker / "artifacts")
    assert result.code == 2
    assert result.err.count("\n") == 1 and "artifacts root" in result.err and "TC_ARTIFACTS_DIR" in result.err


def test_valid_specs_validate(lab):
    for spec in sorted(SPECS.glob("*")):
        result = lab("spec", "validate", str(spec), "--json")
        assert result.code == 0, (spec, result.err)
        assert result.json()["data"]["config_hash"].startswith("sha256:")


def test_json_error_output(lab, tmp_path):
    spec = _write(tmp_path, "")
    result = lab("spec", "validate", str(spec), "--json")
    assert result.code == 2
    line = f"{spec}: is empty, expected a spec mapping"
    assert result.json() == {"status": "error", "summary": line, "artifacts": [], "data": {}, "details": [line], "exit_code": 2}


def test_a_kind_far_from_every_allowed_one_gets_no_guess(lab, tmp_path):
    spec = _write(tmp_path, _with(dataset={"kind": "parquet", "path": "x"}))
    result = lab("spec", "validate", str(spec))
    assert result.code == 2 and result.err.strip().splitlines() == [
        f"error: {spec}: /dataset/kind: 'parquet' is not one of ['synthetic', 'imported']"]


def test_a_valid_kind_keeps_the_errors_of_its_own_variant(lab, tmp_path):
    spec = _write(tmp_path, _with(dataset={"kind": "imported", "id": "x", "seed": 1}))
    lines = lab("spec", "validate", str(spec)).err.strip().splitlines()
    assert lines == [f"error: {spec}: /dataset: unknown field(s) ('seed' was unexpected)"]


def test_starting_balances_take_any_currency_code_each_within_its_bound(lab, tmp_path):
    """A currency of the instrument file (SOL) beside USDT's twelve digits and BTC's six: the pattern for any code applies to
    USDT and BTC as well (JSON Schema checks a name against properties and patternProperties both), so it must not narrow them."""
    big = _write(tmp_path, _with(engine={**DEMO["engine"], "starting_balances": {"USDT": "1000000000", "BTC": "10", "SOL": "250.5"}}))
    assert lab("spec", "validate", str(big)).code == 0
    too_big = _write(tmp_path, _with(engine={**DEMO["engine"], "starting_balances": {"USDT": "1", "BTC": "1000000"}}), "b.yaml")
    result = lab("spec", "validate", str(too_big))
    assert result.code == 2 and "/engine/starting_balances/BTC: '1000000' does not match" in result.err, result.err
