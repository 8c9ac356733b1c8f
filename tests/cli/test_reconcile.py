"""Reconciliation fixtures: each mismatch kind exits 4 naming its check; tolerance and Decimal rules."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, SPECS

SPEC = str(SPECS / "reconcile.yaml")
REC = FIXTURES / "reconciliation"


@pytest.mark.parametrize("observed, code, failing", [
    ("observed_match.json", 0, None),
    ("observed_missing_position.json", 4, "position BTCUSDT.BINANCE presence: expected present, observed absent"),
    ("observed_extra_order.json", 4, "open_order O-2 presence: expected absent, observed present"),
    ("observed_quantity_off.json", 4, "position BTCUSDT.BINANCE quantity: expected 0.30, observed 0.31 (difference 0.01, tolerance 0)"),
    ("observed_balance_off.json", 4, "balance USDT total: expected 1000.30, observed 1000.50 (difference 0.2, tolerance 0.01)"),
    ("observed_balance_within_tolerance.json", 0, None),
    ("observed_decimal_equal.json", 0, None),
])
def test_fixture(lab, observed, code, failing):
    result = lab("reconcile", "--spec", SPEC, "--observed", str(REC / observed), "--json")
    assert result.code == code, result.err
    details = result.json()["details"]
    if failing:
        assert details == [failing]
    else:
        assert details == []
    doc = json.loads((lab.root / "runs/reconcile-fixtures/reconciliation.json").read_text())
    assert doc["status"] == ("match" if code == 0 else "mismatch")
    assert lab("artifacts", "verify", "--all").code == 0


def test_every_reconcile_is_a_new_observation(lab):
    """Reconciliation observes: a second call records a second observation (never deduplicated)."""
    args = ("reconcile", "--spec", SPEC, "--observed", str(REC / "observed_match.json"), "--json")
    assert lab(*args).json()["status"] == "changed"
    assert lab(*args, SOURCE_DATE_EPOCH="1700000100").json()["status"] == "changed"
    folder = lab.root / "runs/reconcile-fixtures"
    events = [json.loads(line)["event"] for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert events.count("reconciliation_evaluated") == 2
    history = [json.loads(line) for line in (folder / "observations/reconciliation.jsonl").read_text().splitlines()]
    assert [h["evaluated_at"] for h in history] == ["2023-11-14T22:13:20Z", "2023-11-14T22:15:00Z"]
    assert json.loads((folder / "reconciliation.json").read_text())["evaluated_at"] == "2023-11-14T22:15:00Z"
    assert lab("artifacts", "verify", "--all").code == 0


def test_observation_history_is_bounded_by_retention(lab):
    args = ("reconcile", "--spec", SPEC, "--observed", str(REC / "observed_match.json"))
    for n in range(4):
        assert lab(*args, TC_OBSERVATION_RETENTION="2", SOURCE_DATE_EPOCH=str(1700000000 + n)).code == 0
    lines = (lab.root / "runs/reconcile-fixtures/observations/reconciliation.jsonl").read_text().splitlines()
    assert [json.loads(line)["evaluated_at"][-3:] for line in lines] == ["22Z", "23Z"]


@pytest.mark.parametrize("content, needle", [
    (None, "observed_float_quantity.json: /positions/0/quantity: 0.30000000000000004 is not of type 'string' (write decimals as strings"),
    ("{not json", "not valid YAML"),
    ('{"schema_version": 1, "source": "observed", "positions": []}', "missing required field 'balances' (and 1 more)"),
    ("[]", "expected a state mapping"),
])
def test_bad_state_files_exit_2(lab, tmp_path, content, needle):
    path = REC / "observed_float_quantity.json"
    if content is not None:
        path = tmp_path / "observed.json"
        path.write_text(content)
    result = lab("reconcile", "--spec", SPEC, "--observed", str(path))
    assert result.code == 2 and needle in result.err and result.err.count("\n") == 1, result.err
    assert not (lab.root / "runs/reconcile-fixtures/reconciliation.json").exists()


def test_observed_defaults_to_the_runs_final_state(lab):
    result = lab("reconcile", "--spec", SPEC)
    assert result.code == 2 and "final_state.json" in result.err and "tc run backtest" in result.err
