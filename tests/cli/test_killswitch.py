"""The kill switch: idempotent, fail closed, hash-chained history, safe under concurrent use."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from conftest import REPO, tc_env
from opslab import journal


def test_engage_release_idempotent_with_history(lab):
    missing_root = lab("killswitch", "status")
    assert missing_root.code == 2 and "does not exist" in missing_root.err  # a typo'd root is not "released"
    lab.root.mkdir(parents=True)
    assert lab("killswitch", "status").code == 0
    first = lab("killswitch", "engage", "--reason", "incident 1", "--json")
    assert first.code == 0 and first.json()["status"] == "changed"
    again = lab("killswitch", "engage", "--reason", "incident 1 again", "--json")
    assert again.json()["status"] == "ok"
    status = lab("killswitch", "status", "--json")
    assert status.code == 3
    ks = status.json()["data"]["kill_switch"]
    assert ks["engaged"] and ks["reason"] == "incident 1" and "@" in ks["by"] and ks["since"]
    assert lab("killswitch", "release", "--reason", "fixed", "--json").json()["status"] == "changed"
    assert lab("killswitch", "release", "--reason", "fixed", "--json").json()["status"] == "ok"
    events = journal.read(lab.root / "state/kill_switch_events.jsonl")
    assert [e["action"] for e in events] == ["engage", "release"]
    assert journal.verify(lab.root / "state/kill_switch_events.jsonl", "kill_switch_event", "kill_switch_events.jsonl") == []
    assert lab("artifacts", "verify", "--all").code == 0


def test_check_mode_changes_nothing(lab):
    result = lab("killswitch", "engage", "--reason", "x", "--check", "--json")
    assert result.json()["status"] == "changed"
    assert not (lab.root / "state").exists() or not (lab.root / "state/kill_switch.json").exists()


def test_corrupt_state_fails_closed_and_needs_force(lab):
    lab("killswitch", "engage", "--reason", "x")
    state = lab.root / "state/kill_switch.json"
    for bad in ["{not json", json.dumps({"state": "maybe"}), ""]:
        state.write_text(bad)
        status = lab("killswitch", "status", "--json")
        assert status.code == 3
        assert status.json()["data"]["kill_switch"]["state"] == "corrupt"
        assert "release --force" in status.json()["summary"] and str(state) in status.json()["summary"]
    refused = lab("killswitch", "release", "--reason", "y")
    assert refused.code == 2 and "--force" in refused.err and refused.err.count("\n") == 1
    forced = lab("killswitch", "release", "--force", "--reason", "inspected: truncated file")
    assert forced.code == 0
    assert lab("killswitch", "status").code == 0
    assert journal.read(lab.root / "state/kill_switch_events.jsonl")[-1]["forced"] is True


def test_bad_reason_is_refused_and_nothing_written(lab):
    too_long = lab("killswitch", "engage", "--reason", "r" * 201)
    assert too_long.code == 2 and "at most 200" in too_long.err and too_long.err.count("\n") == 1
    empty = lab("killswitch", "engage", "--reason", "  ")
    assert empty.code == 2
    missing = lab("killswitch", "engage")
    assert missing.code == 2 and "--reason" in missing.err
    assert not (lab.root / "state").exists()


def test_concurrent_engage_and_release_lose_nothing(tmp_path):
    root = tmp_path / "artifacts"
    code = (
        "import sys\nfrom opslab import safety\n"
        "for i in range(15):\n"
        "    (safety.engage if (i + int(sys.argv[1])) % 2 == 0 else safety.release)(f'worker {sys.argv[1]} step {i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], cwd=REPO, env=tc_env(root)) for n in range(6)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    events_path = root / "state/kill_switch_events.jsonl"
    assert journal.verify(events_path, "kill_switch_event", "kill_switch_events.jsonl") == []
    events = journal.read(events_path)
    assert events, "some transitions must have happened"
    actions = [e["action"] for e in events]
    assert all(a != b for a, b in itertools.pairwise(actions)), "every event is a real transition"
    state = json.loads((root / "state/kill_switch.json").read_text())
    assert state["event_seq"] == events[-1]["seq"]
    assert state["state"] == ("engaged" if events[-1]["action"] == "engage" else "released")


def _record_auto(root, action: str, reason: str) -> subprocess.CompletedProcess:
    code = "import sys\nfrom opslab import safety\nprint(safety.record_auto(sys.argv[1], sys.argv[2], 'node-x')['seq'])"
    return subprocess.run([sys.executable, "-c", code, action, reason], cwd=REPO, env=tc_env(root), capture_output=True, text=True)


def test_a_nodes_soft_halts_join_the_chained_history_without_engaging_the_switch(lab):
    lab.root.mkdir(parents=True)
    assert _record_auto(lab.root, "auto_reduce", "auto: stale book (3.1 s > 2 s)").stdout.split() == ["1"]
    status = lab("killswitch", "status", "--json")
    assert status.code == 0 and status.json()["data"]["kill_switch"]["state"] == "released"  # no operator engaged it
    assert lab("run", "list").code == 0
    assert lab("killswitch", "engage", "--reason", "incident", "--json").json()["status"] == "changed"
    assert _record_auto(lab.root, "auto_release", "auto: book fresh again (0.1 s <= 2 s)").returncode == 0
    engaged = lab("killswitch", "status", "--json")  # the switch follows its last engage, not the node's release after it
    assert engaged.code == 3 and engaged.json()["data"]["kill_switch"]["reason"] == "incident"
    assert lab("killswitch", "release", "--reason", "fixed").code == 0
    history = lab.root / "state/kill_switch_events.jsonl"
    events = journal.read(history)
    assert [(e["action"], e.get("run_id")) for e in events] == [("auto_reduce", "node-x"), ("engage", None), ("auto_release", "node-x"),
                                                                 ("release", None)]
    assert events[0]["reason"] == "auto: stale book (3.1 s > 2 s)" and "@" in events[0]["by"]
    assert lab("artifacts", "verify", "--all").code == 0
    bad = _record_auto(lab.root, "engage", "a node may not engage the switch")
    assert bad.returncode != 0 and "expected one of auto_reduce, auto_release" in bad.stderr
    lines = history.read_text().splitlines()
    lines[0] = lines[0].replace("stale book", "stale bOOk")  # an edited soft halt breaks the chain: the switch fails closed
    history.write_text("\n".join(lines) + "\n")
    assert lab("killswitch", "status", "--json").json()["data"]["kill_switch"]["state"] == "corrupt"
    assert lab("artifacts", "verify", "--all").code != 0


def test_a_state_file_whose_history_holds_only_soft_halts_fails_closed(lab):
    lab.root.mkdir(parents=True)
    assert _record_auto(lab.root, "auto_reduce", "auto: stale user_stream (4.0 s > 3 s)").returncode == 0
    (lab.root / "state/kill_switch.json").write_text(json.dumps({"schema_version": 1, "state": "released", "since": "2026-12-03T00:00:00Z",
                                                                 "by": "a@b", "reason": "hand-made", "event_seq": 1}))
    status = lab("killswitch", "status", "--json")
    assert status.code == 3 and "no engage or release in its history" in status.json()["summary"]


def test_a_folder_at_the_state_file_is_exit_2_before_the_history_changes(lab):
    (lab.root / "state/kill_switch.json").mkdir(parents=True)
    result = lab("killswitch", "engage", "--reason", "incident")
    assert result.code == 2 and "kill_switch.json: is a folder" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (lab.root / "state/kill_switch_events.jsonl").exists()


def test_engage_with_no_node_running_says_so_and_a_bad_wait_is_refused(lab):
    lab.root.mkdir(parents=True)
    bad = lab("killswitch", "engage", "--reason", "x", "--wait-seconds", "0")
    assert bad.code == 2 and bad.err.count("\n") == 1 and "--wait-seconds" in bad.err
    assert not (lab.root / "state/kill_switch.json").exists()
    done = lab("killswitch", "engage", "--reason", "x", "--json")
    assert done.code == 0 and done.json()["data"]["nodes"] == {"acknowledged": [], "not_acknowledged": [], "stale": [], "refused": []}
    assert "0 running node(s) acknowledged HALTED" in done.json()["summary"]


def test_engage_names_a_registry_entry_it_cannot_trust_exits_4_and_stays_engaged(lab):
    import os

    nodes_dir = lab.root / "state" / "nodes"
    nodes_dir.mkdir(parents=True, mode=0o700)
    os.mkfifo(nodes_dir / "ghost.json")  # a FIFO must be refused, not waited on
    done = lab("killswitch", "engage", "--reason", "incident", "--json")
    assert done.code == 4, done.err
    result = done.json()
    assert result["status"] == "unconfirmed" and "state/nodes/ghost.json" in result["summary"]
    assert "not a regular file" in result["data"]["nodes"]["refused"][0]["why"]
    assert lab("killswitch", "status").code == 3
    text = lab("killswitch", "engage", "--reason", "again")
    assert text.code == 4 and "NOT confirmed" in text.out and "refused" in text.out
