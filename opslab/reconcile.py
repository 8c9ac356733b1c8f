"""Reconciliation: compare an expected state with an observed one, check by check, as Decimal.

Both sides are state snapshots (schemas/state_snapshot.schema.json): positions per instrument,
open orders per client order id, balances per currency. Quantities and balances must be decimal
STRINGS; a JSON/YAML float is refused (floats carry binary rounding: 0.1 + 0.2 != 0.3).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from opslab import clock, runs
from opslab.contracts import SCHEMA_VERSION, errors_for
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.spec import RunSpec, parse_document


def load_state(path: Path, role: str) -> dict[str, Any]:
    """A state snapshot file, validated; InputError (one line: file, pointer, expectation) otherwise."""
    doc = parse_document(path, what=f"{role} state")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: /: expected a state mapping (positions, open_orders, balances)")
    problems = errors_for("state_snapshot", doc, str(path))
    if problems:
        first = problems[0]
        if "is not of type 'string'" in first:
            first += " (write decimals as strings, e.g. \"0.3\": floats carry binary rounding)"
        raise InputError(first + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return doc


def _check(kind: str, key: str, field: str, expected: Any, observed: Any, tolerance: Decimal | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "key": key, "field": field, "expected": expected, "observed": observed,
                             "difference": None, "tolerance": None}
    if tolerance is not None and expected is not None and observed is not None:
        diff = Decimal(observed) - Decimal(expected)
        entry["difference"] = format(diff.normalize(), "f") if diff else "0"
        entry["tolerance"] = format(tolerance.normalize(), "f") if tolerance else "0"
        entry["status"] = "match" if abs(diff) <= tolerance else "mismatch"
    else:
        entry["status"] = "match" if expected == observed else "mismatch"
    return entry


def _keyed(kind: str, key_field: str, expected: list[dict], observed: list[dict],
           fields: list[tuple[str, Decimal | None]]) -> list[dict[str, Any]]:
    """Presence of every key on either side, then each field of keys present on both."""
    checks = []
    exp = {row[key_field]: row for row in expected}
    obs = {row[key_field]: row for row in observed}
    for key in sorted(exp.keys() | obs.keys()):
        e, o = exp.get(key), obs.get(key)
        checks.append(_check(kind, key, "presence", "present" if e else "absent", "present" if o else "absent"))
        if e and o:
            for field, tolerance in fields:
                if field in e or field in o:
                    checks.append(_check(kind, key, field, e.get(field), o.get(field), tolerance))
    return checks


ENTRY_PRICE_TOLERANCE = "0.01"  # reconciliation.tolerances.entry_price when absent


def compare(expected: dict[str, Any], observed: dict[str, Any], qty_tol: Decimal, bal_tol: Decimal,
            entry_tol: Decimal = Decimal(ENTRY_PRICE_TOLERANCE)) -> list[dict[str, Any]]:
    """Every check between two states, in a stable order. A position's entry price is checked where either side has one
    (a USD-M perpetual's)."""
    checks = _keyed("position", "instrument", expected["positions"], observed["positions"],
                    [("side", None), ("quantity", qty_tol), ("entry_price", entry_tol)])
    checks += _keyed("open_order", "client_order_id", expected["open_orders"], observed["open_orders"],
                     [("side", None), ("quantity", qty_tol), ("price", Decimal(0))])
    for ccy in sorted(expected["balances"].keys() | observed["balances"].keys()):
        e, o = expected["balances"].get(ccy), observed["balances"].get(ccy)
        if e is None or o is None:
            checks.append(_check("balance", ccy, "presence", "present" if e else "absent", "present" if o else "absent"))
        else:
            checks.append(_check("balance", ccy, "total", e, o, bal_tol))
    return checks


def _describe(check: dict[str, Any]) -> str:
    text = f"{check['kind']} {check['key']} {check['field']}: expected {check['expected']}, observed {check['observed']}"
    if check["difference"] is not None:
        text += f" (difference {check['difference']}, tolerance {check['tolerance']})"
    return text


def reconcile(spec: RunSpec, expected_file: str | None = None, observed_file: str | None = None, check: bool = False) -> Result:
    """The `tc reconcile` operation: records a new reconciliation; exit 0 when every check matches, 4 otherwise."""
    conf = spec.data["reconciliation"]
    if expected_file:
        exp_path = Path(expected_file)
    elif conf.get("expected"):
        exp_path = spec.resolve(conf["expected"])
    elif spec.data["engine"]["kind"] == "node":  # a node run: the venue's own record is the expected side
        exp_path = runs.path_of(runs.run_dir(spec.run_id), "venue_record")
    else:
        raise InputError(f"{spec.path}: /reconciliation/expected: not set; name an expected-state file there or pass --expected FILE")
    expected = load_state(exp_path, "expected")
    folder = runs.run_dir(spec.run_id)
    if observed_file:
        obs_path = Path(observed_file)
        observed_source = str(obs_path)
    else:
        obs_path = runs.path_of(folder, "final_state")
        observed_source = f"runs/{spec.run_id}/{obs_path.name}"
        if not obs_path.exists():
            raise InputError(f"{obs_path}: no final state for run {spec.run_id!r}; run `tc run backtest` or `tc run paper` "
                             "for this spec first, or pass --observed FILE")
    observed = load_state(obs_path, "observed")
    tol = conf["tolerances"]
    checks = compare(expected, observed, Decimal(tol["quantity"]), Decimal(tol["balance"]), Decimal(tol.get("entry_price", ENTRY_PRICE_TOLERANCE)))
    mismatches = [c for c in checks if c["status"] == "mismatch"]
    status = "mismatch" if mismatches else "match"
    summary = f"reconciliation of run {spec.run_id}: {len(checks) - len(mismatches)}/{len(checks)} checks match"
    if mismatches:
        summary += f", {len(mismatches)} MISMATCH"
    details = [_describe(c) for c in mismatches]
    code = EXIT_CODES["check"] if mismatches else 0
    if check:
        return Result("changed", f"would record: {summary}", [str(runs.path_of(folder, 'reconciliation'))], exit_code=code, details=details)
    doc = {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "status": status, "expected_file": str(exp_path),
           "observed_source": observed_source, "tolerances": {"quantity": tol["quantity"], "balance": tol["balance"],
                                                                                  "entry_price": tol.get("entry_price", ENTRY_PRICE_TOLERANCE)},
           "summary": {"checks": len(checks), "matches": len(checks) - len(mismatches), "mismatches": len(mismatches)},
           "checks": checks, "evaluated_at": clock.now_iso()}
    with runs.open(spec) as run:
        run.observe("reconciliation", doc, "reconciliation_evaluated",
                    {"status": status, "checks": len(checks), "mismatches": len(mismatches)},
                    {"status": status, "checks": len(checks), "mismatches": len(mismatches), "expected_file": str(exp_path),
                     "observed_source": observed_source, "evaluated_at": doc["evaluated_at"]})
    return Result("changed", summary, [str(run.path("reconciliation"))], {"reconciliation": doc}, exit_code=code, details=details)
