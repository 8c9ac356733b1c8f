"""The upgrade canary's parts that need no engine run: finding the environments, choosing engines, what counts
as a change between engines, the document against its schema, and both renderings."""

from __future__ import annotations

import copy
import platform
import sys
from pathlib import Path

import pytest

from opslab import contracts
from opslab.drills import matrix
from opslab.errors import InputError
from opslab.report import html, markdown

RUNNING = matrix._running  # the real one: the fixture below replaces it in every test


def _venv(home: Path, name: str, engine: str | None, python: str = "3.13") -> None:
    (home / name / "bin").mkdir(parents=True)
    (home / name / "bin" / "python").write_text("")
    site = home / name / "lib" / f"python{python}" / "site-packages"
    site.mkdir(parents=True)
    if engine:
        (site / f"nautilus_trader-{engine}.dist-info").mkdir()
    (home / name / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {python}.1\n")


@pytest.fixture(autouse=True)
def no_running_engine(monkeypatch):
    """Only the folders a test builds count, whichever interpreter runs the tests."""
    monkeypatch.setattr(matrix, "_running", lambda: None)


@pytest.fixture
def home(tmp_path):
    _venv(tmp_path, ".venv-1.221.0", "1.221.0", "3.11")
    _venv(tmp_path, ".venv-1.231.0", "1.231.0")
    (tmp_path / ".venv").symlink_to(".venv-1.231.0")  # make setup: .venv links to the default engine's venv
    _venv(tmp_path, ".venv-empty", None)
    (tmp_path / ".venv-notes.txt").write_text("not an environment")
    return tmp_path


def test_environments_are_the_checkout_venvs_that_hold_nautilus_trader(home):
    found = matrix.environments(home)
    assert sorted(found) == ["1.221.0", "1.231.0"]
    assert found["1.231.0"].folder == ".venv-1.231.0" and found["1.231.0"].python == home / ".venv-1.231.0" / "bin" / "python"
    assert found["1.221.0"].folder == ".venv-1.221.0"  # each under its own name, never under the .venv link


def test_engines_are_chosen_oldest_first_and_every_one_by_default(home):
    assert [e.engine for e in matrix.choose(None, home)] == ["1.221.0", "1.231.0"]
    assert [e.engine for e in matrix.choose("1.231.0, 1.221.0", home)] == ["1.221.0", "1.231.0"]
    assert [e.engine for e in matrix.choose("1.231.0", home)] == ["1.231.0"]


@pytest.mark.parametrize("engines, says", [
    ("1.230.0", "no environment holds nautilus_trader 1.230.0"),
    ("1.221.0,1.221.0", "named twice"),
    ("latest", "not a release number"),
    (",", "expected 1 to 8"),
    (",".join(f"1.{n}.0" for n in range(9)), "expected 1 to 8"),
])
def test_bad_engines_are_one_clear_input_error(home, engines, says):
    with pytest.raises(InputError, match=says):
        matrix.choose(engines, home)


def test_a_missing_environment_says_how_to_build_it(home):
    with pytest.raises(InputError, match=r"make setup ENGINE=1\.230\.0"):
        matrix.choose("1.230.0", home)


def test_the_running_interpreter_counts_when_no_venv_holds_its_release(tmp_path, monkeypatch):
    # the image: NautilusTrader installed with no venv in the checkout
    monkeypatch.setattr(matrix, "_running", lambda: "1.221.0")
    found = matrix.environments(tmp_path)
    assert list(found) == ["1.221.0"] and found["1.221.0"].folder == "this interpreter"
    assert found["1.221.0"].python == Path(sys.executable)
    assert matrix._python_version(found["1.221.0"]) == platform.python_version()


def test_a_venv_wins_over_the_running_interpreter_for_the_same_release(home, monkeypatch):
    monkeypatch.setattr(matrix, "_running", lambda: "1.231.0")
    assert matrix.environments(home)["1.231.0"].folder == ".venv-1.231.0"


def test_the_running_release_is_read_from_its_metadata():
    import nautilus_trader
    assert RUNNING() == nautilus_trader.__version__


def test_no_environment_at_all_says_run_make_setup(tmp_path):
    with pytest.raises(InputError, match="make setup"):
        matrix.choose(None, tmp_path)


def test_only_node_drills_can_be_chosen():
    assert "node_crash" in matrix.node_drills(None) and "mismatch" not in matrix.node_drills(None)
    assert matrix.node_drills(["node_crash", "node_crash"]) == ["node_crash"]
    with pytest.raises(InputError, match="not a node drill"):
        matrix.node_drills(["mismatch"])


def _result(verdict: str = "pass", findings: list[str] | None = None, alert: str | None = "TcNodeHeartbeatStale", engine: str = "1.221.0") -> dict:
    detected = verdict == "pass"
    return {"schema_version": 1, "drill": "node_crash", "fault_injected": "SIGKILL", "expected_detection": "an alert", "observed_detection": "x",
            "detected": detected, "detection_enabled": True, "time_to_detect": {"value": 6845 if detected else None, "unit": "ms"},
            "runbook": "runbooks/node_crash.md", "verdict": verdict, "evidence": {}, "finished_at": "2026-12-02T20:00:00Z", "kind": "node",
            "alert": {"alertname": alert, "seconds": 6.8, "seq": 2, "received_at": "2026-12-02T20:00:00Z"} if alert else None,
            "findings": findings if findings is not None else ["the node left 1 open order(s) after 8.2 s"],
            "engine_version": f"nautilus_trader {engine}"}


def test_numbers_moving_is_not_a_change():
    cells = {"1.221.0": _result(findings=["the node left 1 open order(s) after 8.2 s"]),
             "1.231.0": _result(findings=["the node left 3 open order(s) after 10.25 s"], engine="1.231.0")}
    assert matrix.differences(cells) == []


@pytest.mark.parametrize("other, label", [
    (_result("fail", alert=None, engine="1.231.0"), "verdict"),
    (_result(alert="TcNodeDown", engine="1.231.0"), "alert"),
    (_result(findings=["the node cancelled every order after 8.2 s"], engine="1.231.0"), "finding 1 reads differently"),
    (_result(findings=["the node left 1 open order(s) after 8.2 s", "and it said so"], engine="1.231.0"), "finding 2 reads differently"),
    (_result(findings=[], engine="1.231.0"), "finding 1 reads differently"),
])
def test_a_different_verdict_alert_or_wording_is_a_change(other, label):
    changes = matrix.differences({"1.221.0": _result(), "1.231.0": other})
    assert changes and changes[0].startswith(label), changes
    assert "1.221.0" in changes[0] and "1.231.0" in changes[0]


def test_one_engine_has_nothing_to_compare():
    assert matrix.differences({"1.231.0": _result()}) == []


def _document() -> dict:
    rows = [{"engine": e, "environment": f".venv-{e}", "python": "3.13.0", "exit_code": 0, "seconds": 150.0, "error": None} for e in ("1.221.0", "1.231.0")]
    results = {"1.221.0": {"node_crash": _result(), "node_kill_switch": {**_result(), "drill": "node_kill_switch"}},
               "1.231.0": {"node_crash": _result(findings=["the node <b>cancelled</b> every order"], engine="1.231.0")}}
    return matrix._document(rows, ["node_crash", "node_kill_switch"], results)


def test_the_document_validates_and_counts_rows():
    doc = _document()
    assert contracts.errors_for("drill_matrix", doc, "matrix.json") == []
    assert doc["summary"] == {"drills": 2, "complete": 1, "changed": 1, "passed": {"1.221.0": 2, "1.231.0": 1}}
    crash, kill = doc["drills"]
    assert crash["changed"] and not kill["changed"] and list(kill["cells"]) == ["1.221.0"]


def test_the_schema_refuses_a_cell_keyed_by_something_else():
    doc = _document()
    bad = copy.deepcopy(doc)
    bad["drills"][0]["cells"]["latest"] = bad["drills"][0]["cells"]["1.221.0"]
    assert contracts.errors_for("drill_matrix", bad, "matrix.json")


def test_the_page_marks_changed_rows_and_escapes_findings():
    page = html.render_matrix(_document())
    assert page.count('<tr class="mismatch">') == 1 and "no result" in page
    assert "<b>cancelled</b>" not in page and "&lt;b&gt;cancelled&lt;/b&gt;" in page
    assert "nautilus_trader 1.231.0" in page


def test_the_markdown_links_runbooks_and_says_what_changed():
    text = markdown.render_matrix(_document())
    assert "[node\\_crash](runbooks/node_crash.md)" in text or "[node_crash](runbooks/node_crash.md)" in text
    assert "| **yes** |" in text and "What changed: finding 1 reads differently" in text
    assert "What changed: nothing (numbers aside)." in text
