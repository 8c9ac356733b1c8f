"""`tc alerts receive` / `tc alerts list`: a real receiver on a free loopback port, real HTTP.

Valid payloads are kept as one hash-chained line each; every kind of bad payload is refused with
the right status and leaves the history exactly as it was."""

from __future__ import annotations

import copy
import http.client
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO, tc_env
from opslab import journal
from opslab.alerts import notifications
from opslab.alerts.receiver import Receiver

PAYLOAD = {
    "version": "4",
    "groupKey": '{}/{severity="warning"}:{alertname="TcKillSwitchEngaged"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "lab",
    "groupLabels": {"alertname": "TcKillSwitchEngaged"},
    "commonLabels": {"alertname": "TcKillSwitchEngaged", "severity": "warning", "area": "safety"},
    "commonAnnotations": {"summary": "The lab's kill switch is engaged", "runbook_url": "http://127.0.0.1:8000/runbooks/kill_switch/"},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "TcKillSwitchEngaged", "severity": "warning", "area": "safety"},
        "annotations": {"summary": "The lab's kill switch is engaged", "description": "d",
                        "runbook_url": "http://127.0.0.1:8000/runbooks/kill_switch/"},
        "startsAt": "2026-11-25T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=tc_kill_switch_engaged+%3D%3D+1",
        "fingerprint": "4c8b8ad8a1f7b3e2",
    }],
}


@pytest.fixture
def receiver(tmp_path):
    """A receiver over tmp_path/artifacts on a free port; yields (host, port, root, events)."""
    root = tmp_path / "artifacts"
    events: list[tuple[str, object, object]] = []
    rec = Receiver(root, "127.0.0.1", 0, lambda *e: events.append(e))
    thread = threading.Thread(target=rec.server.serve_forever, daemon=True)  # what `tc alerts receive` serves
    thread.start()
    try:
        yield rec.server.server_address[1], root, events
    finally:
        rec.server.shutdown()
        thread.join(timeout=10)
        rec.server.server_close()


def _post(port: int, body: bytes, path: str = "/alerts", headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", path)
        for key, value in (headers if headers is not None else {"Content-Length": str(len(body))}).items():
            conn.putheader(key, value)
        conn.endheaders()
        if body and headers is None:
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_a_valid_notification_is_kept_chained_and_verifiable(receiver):
    port, root, events = receiver
    resolved = copy.deepcopy(PAYLOAD)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-25T10:05:00Z"
    resolved["someFutureField"] = "dropped"
    assert _post(port, json.dumps(PAYLOAD).encode()) == (200, {"status": "recorded", "seq": 1})
    assert _post(port, json.dumps(resolved).encode()) == (200, {"status": "recorded", "seq": 2})
    path = root / "alerts" / "notifications.jsonl"
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["notification"]["status"] for line in lines] == ["firing", "resolved"]
    assert lines[0]["notification"] == PAYLOAD
    assert "someFutureField" not in lines[1]["notification"]
    assert journal.verify(path, "alert_notification", "notifications.jsonl") == []
    assert [e[0] for e in events] == ["recorded", "recorded"]


BAD = {
    "not json": (b"{nope", "not valid JSON"),
    "not an object": (b"[1]", "expected a JSON object"),
    "old version": (json.dumps({**PAYLOAD, "version": "3"}).encode(), '/version: expected "4"'),
    "missing alerts": (json.dumps({k: v for k, v in PAYLOAD.items() if k != "alerts"}).encode(), "'alerts' is a required property"),
    "no alerts": (json.dumps({**PAYLOAD, "alerts": []}).encode(), "/alerts"),
    "bad status": (json.dumps({**PAYLOAD, "status": "burning"}).encode(), "/status"),
    "label not a string": (json.dumps({**PAYLOAD, "commonLabels": {"severity": 3}}).encode(), "/commonLabels/severity"),
    "bad time": (json.dumps({**PAYLOAD, "alerts": [{**PAYLOAD["alerts"][0], "startsAt": "yesterday"}]}).encode(), "/alerts/0/startsAt"),
    "invalid utf-8": (b'{"version": "4\xff"}', "not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_payload_is_refused_with_400_and_nothing_written(receiver, case):
    port, root, events = receiver
    assert _post(port, json.dumps(PAYLOAD).encode())[0] == 200
    path = root / "alerts" / "notifications.jsonl"
    before = path.read_bytes()
    body, expected = BAD[case]
    status, answer = _post(port, body)
    assert status == 400 and expected in answer["error"], answer
    assert path.read_bytes() == before
    assert events[-1][0] == "refused" and expected in str(events[-1][2])


def test_oversized_missing_length_and_unknown_paths_are_refused(receiver):
    port, root, _ = receiver
    huge = notifications.MAX_BODY_BYTES + 1
    assert _post(port, b"", headers={"Content-Length": str(huge)})[0] == 413
    assert _post(port, b"", headers={})[0] == 411
    assert _post(port, json.dumps(PAYLOAD).encode(), path="/")[0] == 404
    assert not (root / "alerts").exists()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def test_a_history_that_cannot_be_written_is_a_503_for_alertmanager_to_retry(receiver):
    port, root, events = receiver
    root.mkdir(parents=True)
    (root / "alerts").write_text("a file where the folder should be\n")
    status, answer = _post(port, json.dumps(PAYLOAD).encode())
    assert status == 503 and "cannot write" in answer["error"]
    assert events[-1][0] == "failed"
    assert (root / "alerts").read_text() == "a file where the folder should be\n"


def test_parse_refuses_a_body_over_the_limit_before_parsing():
    with pytest.raises(Exception, match="more than the"):
        notifications.parse_payload(b" " * (notifications.MAX_BODY_BYTES + 1))


def test_list_shows_what_fired_when_and_the_runbook_escaped(lab):
    assert lab("alerts", "list").code == 2  # no artifacts root at all: a misconfigured root, not "no alerts"
    lab.root.mkdir(parents=True)
    empty = lab("alerts", "list", "--json")
    assert empty.code == 0 and empty.json()["data"]["alerts"] == []
    evil = copy.deepcopy(PAYLOAD)
    evil["alerts"][0]["annotations"]["summary"] = "engaged\x1b[2J"
    notifications.record(notifications.parse_payload(json.dumps(evil).encode()), lab.root)
    shown = lab("alerts", "list")
    assert shown.code == 0, shown.err
    assert "firing" in shown.out and "TcKillSwitchEngaged" in shown.out and "http://127.0.0.1:8000/runbooks/kill_switch/" in shown.out
    assert "\x1b" not in shown.out and "\\x1b[2J" in shown.out
    rows = lab("alerts", "list", "--json").json()["data"]["alerts"]
    assert [(r["status"], r["alertname"], r["severity"]) for r in rows] == [("firing", "TcKillSwitchEngaged", "warning")]
    assert lab("artifacts", "verify", "--all").code == 0
    bad = lab("alerts", "list", "--limit", "0")
    assert bad.code == 2 and "--limit" in bad.err


def test_an_edited_history_fails_verification(lab):
    notifications.record(notifications.parse_payload(json.dumps(PAYLOAD).encode()), lab.root)
    path = lab.root / "alerts" / "notifications.jsonl"
    path.write_bytes(path.read_bytes().replace(b"firing", b"resolved", 1))
    result = lab("artifacts", "verify", "--all")
    assert result.code == 4 and "notifications.jsonl:1" in result.out


@pytest.mark.parametrize("args, env, message", [
    (["--host", "not-an-ip"], {}, "--host"),
    (["--port", "70000"], {}, "out of range"),
    ([], {"TC_ALERTS_PORT": "http"}, "TC_ALERTS_PORT"),
])
def test_receive_refuses_bad_addresses_in_one_line(lab, args, env, message):
    result = lab("alerts", "receive", *args, **env)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
    assert not (lab.root / "alerts").exists()


def test_receive_says_where_it_listens_first_and_stops_on_sigterm(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-m", "opslab", "alerts", "receive", "--port", "0"], cwd=REPO,
                            env=tc_env(tmp_path / "artifacts"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:") and first.split()[2].endswith("/alerts")
        port = int(first.split()[2].rsplit(":", 1)[1].split("/", 1)[0])
        assert _post(port, json.dumps(PAYLOAD).encode())[0] == 200
        assert proc.stdout.readline().startswith("recorded #1: firing TcKillSwitchEngaged")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "1 recorded, 0 refused, 0 failed" in out


def test_every_subpackage_ships_in_the_wheel():
    """The image installs the wheel: a package missing from pyproject's list is missing there
    (`tc alerts` failed in the image with ModuleNotFoundError before opslab.alerts was listed)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "opslab").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found <= listed, found - listed


def test_a_huge_refused_payload_is_echoed_bounded_in_the_answer_and_the_log(receiver):
    port, root, events = receiver
    payload = copy.deepcopy(PAYLOAD)
    payload["status"] = "x" * 310_000  # the schema's message quotes the value it refuses
    status, body = _post(port, json.dumps(payload).encode())
    assert status == 400 and body["error"].startswith("payload: /status: 'xxxx") and "characters)" in body["error"]
    assert len(body["error"]) < 400
    outcome, line, error = events[-1]
    assert outcome == "refused" and error == body["error"]
    assert not (root / "alerts/notifications.jsonl").exists()


def test_a_truncated_history_is_a_503_and_is_not_re_anchored(receiver):
    port, root, events = receiver
    assert _post(port, json.dumps(PAYLOAD).encode())[0] == 200
    assert _post(port, json.dumps(PAYLOAD).encode())[0] == 200
    history = root / "alerts/notifications.jsonl"
    history.write_bytes(history.read_bytes().splitlines(keepends=True)[0])
    status, body = _post(port, json.dumps(PAYLOAD).encode())
    assert status == 503 and "truncated or rewritten" in body["error"]
    assert len(history.read_bytes().splitlines()) == 1 and json.loads((root / "alerts/notifications.anchor.json").read_text())["lines"] == 2
