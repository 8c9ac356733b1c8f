"""The node registry and the wake protocol (opslab/nodes.py): real Unix sockets, real files, no node."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opslab import contracts, fs, nodes, safety


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "artifacts"
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(base))
    fs.root_for_write()
    return base


def _acting(calls: list[str], delay: float = 0.0, ok: bool = True):
    def act(reason: str) -> dict[str, Any]:
        calls.append(reason)
        time.sleep(delay)
        return {"ok": ok, "phase": "trading", "trading_state": "HALTED", "orders_in_flight": 0, "drain_ms": delay * 1000}
    return act


def _ask(reg: nodes.Registration, payload: bytes) -> dict[str, Any]:
    """Send PAYLOAD to REG's socket as a client would, and read its one-line answer."""
    with fs.private_dir(nodes.folder()) as dfd, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(nodes._sun_path(dfd, reg.socket_path))
        conn.sendall(payload)
        return json.loads(nodes.read_line(conn, nodes.REPLY_MAX_BYTES, time.monotonic() + 5))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _register_by_hand(root: Path, run_id: str, pid: int, **fields: Any) -> Path:
    doc = {"schema_version": 1, "run_id": run_id, "pid": pid, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00Z",
           "wake_socket": f"state/nodes/{run_id}.sock", **fields}
    path = contracts.artifact("node_registration").at(root, run_id)
    with fs.private_dir(path.parent):
        pass
    path.write_text(json.dumps(doc))
    return path


def test_registration_is_private_valid_and_gone_after_a_clean_stop(root: Path):
    with nodes.Registration("node-a") as reg:
        folder = nodes.folder()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(reg.socket_path.lstat().st_mode)
        doc = json.loads(reg.path.read_text())
        assert contracts.errors_for("node_registration", doc, "x") == []
        assert doc["pid"] == os.getpid() and doc["wake_socket"] == "state/nodes/node-a.sock"
        assert [d["run_id"] for d in nodes.registered()[0]] == ["node-a"]
        from opslab import verify
        assert verify.verify_root(root) == []  # the live socket is a known artifact, not "not a regular file"
    assert sorted(os.listdir(folder)) == []


def test_a_wake_before_the_node_trades_is_kept_for_its_start_and_after_it_stopped_says_stopped(root: Path):
    with nodes.Registration("node-a") as reg:
        report = nodes.wake_all("incident 1", timeout_s=5)
        assert [(a["run_id"], a["phase"], a["trading_state"]) for a in report["acknowledged"]] == [("node-a", "starting", "HALTED")]
        assert reg.attach(_acting([])) == "incident 1"  # the actor starts HALTED with this reason
        reg.detach()
        report = nodes.wake_all("incident 2", timeout_s=5)
        assert report["acknowledged"][0]["phase"] == "stopped"


def test_engage_wakes_every_node_at_once_and_reports_each_acknowledgement(root: Path):
    spans: dict[str, list[float]] = {}

    def act_for(run_id: str):
        def act(reason: str) -> dict[str, Any]:
            start = time.monotonic()
            time.sleep(0.3)
            spans[run_id] = [start, time.monotonic()]
            return {"ok": True, "phase": "trading", "trading_state": "HALTED", "orders_in_flight": 0, "drain_ms": 300.0}
        return act

    regs = [nodes.Registration(f"node-{i}").open() for i in range(3)]
    try:
        for reg in regs:
            reg.attach(act_for(reg.run_id))
        result = safety.engage("incident", wait_s=5)
    finally:
        for reg in regs:
            reg.close()
    assert result.exit_code == 0 and result.status == "changed"
    acks = result.data["nodes"]["acknowledged"]
    assert sorted(a["run_id"] for a in acks) == ["node-0", "node-1", "node-2"]
    assert all(a["latency_ms"] > 0 and a["trading_state"] == "HALTED" for a in acks)
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), "the nodes were woken one after another"
    assert "3 running node(s) acknowledged HALTED" in result.summary


def test_a_node_that_does_not_acknowledge_in_time_is_named_and_the_switch_stays_engaged(root: Path):
    with nodes.Registration("slow-node") as reg:
        reg.attach(_acting([], delay=1.0))
        result = safety.engage("incident", wait_s=0.2)
        assert result.exit_code == 4 and result.status == "unconfirmed"
        assert "slow-node" in result.summary and any("slow-node: NOT confirmed" in d for d in result.details)
        assert safety.snapshot()["engaged"]
        refusing = nodes.Registration("refusing-node").open()
        try:
            refusing.attach(_acting([], ok=False))
            again = safety.engage("incident", wait_s=5)
        finally:
            refusing.close()
    assert again.exit_code == 4 and "refusing-node" in again.summary and "slow-node" not in again.summary


@pytest.mark.parametrize("payload, error", [
    (b"x" * 600, "larger than 512 bytes"),
    (b"{not json\n", "request"),
    (b"[1, 2]\n", "expected a JSON object"),
    (b'{"op": "resume", "reason": "x"}\n', 'expected {"op": "halt"'),
    (b'{"op": "halt", "reason": ""}\n', "non-empty"),
    (b'{"op": "halt", "reason": "' + b"r" * 300 + b'"}\n', "at most 200"),
    (b'{"op": "halt", "reason": "x", "extra": 1}\n', 'expected {"op": "halt"'),
])
def test_bad_requests_are_answered_with_an_error_and_halt_nothing(root: Path, payload: bytes, error: str):
    calls: list[str] = []
    with nodes.Registration("node-a") as reg:
        reg.attach(_acting(calls))
        answer = _ask(reg, payload)
        assert answer["ok"] is False and error in answer["error"] and calls == []
        assert _ask(reg, b'{"op": "halt", "reason": "good"}\n')["ok"] is True and calls == ["good"]


def test_a_silent_client_is_dropped_after_the_io_timeout_and_the_node_still_answers(root: Path):
    calls: list[str] = []
    with nodes.Registration("node-a") as reg:
        reg.attach(_acting(calls))
        answer = _ask(reg, b'{"op": "halt", ')  # never finishes its line
        assert answer["ok"] is False and "in time" in answer["error"]
        assert nodes.wake_all("after", timeout_s=5)["acknowledged"][0]["run_id"] == "node-a" and calls == ["after"]


def test_stale_entries_are_reported_and_removed_a_live_unreachable_one_is_named(root: Path):
    stale = _register_by_hand(root, "crashed", _dead_pid())
    (stale.parent / "crashed.sock").write_bytes(b"")  # whatever a crash left; not a socket: refused, never connected to
    gone = _register_by_hand(root, "gone", _dead_pid())
    alive = _register_by_hand(root, "alive", os.getpid())  # a live process whose socket is missing
    foreign = _register_by_hand(root, "foreign", _dead_pid(), host="another-host")  # its pid means nothing here
    report = nodes.wake_all("incident", timeout_s=2)
    assert [s["run_id"] for s in report["stale"]] == ["gone"] and not gone.exists()
    named = {m["run_id"]: m["why"] for m in report["not_acknowledged"]}
    assert "is not a socket" in named["crashed"] and stale.exists()
    assert "is alive" in named["alive"] and alive.exists()
    assert "another-host" in named["foreign"] and foreign.exists()


def _fifo_registration(root: Path) -> Path:
    path = contracts.artifact("node_registration").at(root, "fifo-node")
    with fs.private_dir(path.parent):
        pass
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("plant", ["symlink", "fifo", "oversized", "other-socket", "wrong-name", "invalid"])
def test_refused_registry_entries_are_named_never_followed_nor_waited_on(root: Path, tmp_path: Path, plant: str):
    folder = nodes.folder()
    with fs.private_dir(folder):
        pass
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"schema_version": 1}))
    if plant == "symlink":
        (folder / "link-node.json").symlink_to(target)
    elif plant == "fifo":
        _fifo_registration(root)
    elif plant == "oversized":
        (folder / "big-node.json").write_text(" " * (nodes.REGISTRATION_MAX_BYTES + 1))
    elif plant == "other-socket":
        _register_by_hand(root, "sneaky", os.getpid(), wake_socket="state/nodes/other.sock")
    elif plant == "wrong-name":
        path = _register_by_hand(root, "real-name", os.getpid())
        path.rename(folder / "other-name.json")
    else:
        (folder / "bad-node.json").write_text(json.dumps({"run_id": "bad-node"}))
    done: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: done.update(result=safety.engage("incident", wait_s=1)), daemon=True)
    worker.start()
    worker.join(timeout=30)  # liveness only: a FIFO must not hang engage
    assert "result" in done, "engage hung on the planted entry"
    result = done["result"]
    assert result.exit_code == 4 and result.data["nodes"]["refused"] and safety.snapshot()["engaged"]
    assert any("refused" in d for d in result.details)
    assert target.read_text() == json.dumps({"schema_version": 1})


def test_a_symlinked_registry_folder_is_refused(root: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "state").mkdir()
    (root / "state" / "nodes").symlink_to(elsewhere)
    docs, refused = nodes.registered()
    assert docs == [] and "symlink" in refused[0]["why"]
    with pytest.raises(Exception, match="symlink"):
        nodes.Registration("node-a").open()
    assert list(elsewhere.iterdir()) == []


def test_a_root_deeper_than_a_socket_path_may_be_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    deep = tmp_path.joinpath(*["d" * 30] * 5) / "artifacts"
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(deep))
    fs.root_for_write()
    assert len(str(deep / "state/nodes/node-a.sock")) > 108
    with nodes.Registration("node-a") as reg:
        reg.attach(_acting([]))
        assert nodes.wake_all("deep", timeout_s=5)["acknowledged"][0]["run_id"] == "node-a"


def test_check_mode_lists_the_nodes_it_would_wake_and_wakes_none(root: Path):
    calls: list[str] = []
    with nodes.Registration("node-a") as reg:
        reg.attach(_acting(calls))
        planned = safety.engage("incident", check=True)
    assert planned.data["nodes"]["registered"] == ["node-a"] and calls == [] and not safety.snapshot()["engaged"]


def test_wait_seconds_out_of_range_is_bad_input(root: Path):
    from opslab.errors import InputError

    for bad in (0, 61, float("nan")):
        with pytest.raises(InputError, match="--wait-seconds"):
            safety.engage("x", wait_s=bad)
    assert not safety.snapshot()["engaged"]
