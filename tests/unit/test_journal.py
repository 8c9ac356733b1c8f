"""The hash-chained journal detects edits, truncation, reordering and torn lines."""

from __future__ import annotations

import json

from opslab import journal


def _journal(tmp_path, n=4):
    path = tmp_path / "journal.jsonl"
    for i in range(n):
        journal.append(path, "r1", "run_initialized" if i == 0 else "dataset_linked", {"i": i})
    return path


def test_intact_chain_verifies(tmp_path):
    path = _journal(tmp_path)
    assert journal.verify(path, "journal_event", "journal.jsonl") == []
    events = journal.read(path)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[0]["prev"] == journal.GENESIS and events[1]["prev"] == events[0]["hash"]


def test_edit_is_detected(tmp_path):
    path = _journal(tmp_path)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["data"]["i"] = 99
    lines[1] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    assert any("hash does not match" in p for p in journal.verify(path, "journal_event", "journal.jsonl"))


def test_dropped_line_is_detected(tmp_path):
    path = _journal(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    problems = journal.verify(path, "journal_event", "journal.jsonl")
    assert any("chain broken" in p for p in problems) and any("seq" in p for p in problems)


def test_reorder_is_detected(tmp_path):
    path = _journal(tmp_path)
    lines = path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert journal.verify(path, "journal_event", "journal.jsonl")


def test_torn_last_line_is_detected_and_skipped_by_reader(tmp_path):
    path = _journal(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-20])
    problems = journal.verify(path, "journal_event", "journal.jsonl")
    assert any("torn" in p for p in problems)
    assert len(journal.read(path)) == 3


def test_schema_violation_is_reported(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal.append(path, "r1", "not_an_event_type")
    assert any("/event" in p for p in journal.verify(path, "journal_event", "journal.jsonl"))


def test_append_after_a_torn_line_drops_it_and_keeps_the_chain(tmp_path):
    path = _journal(tmp_path, 3)
    path.write_bytes(path.read_bytes() + b'{"schema_version":1,"seq":4,"ts"')  # killed mid-write
    journal.append(path, "r1", "dataset_linked", {"i": 4})
    assert journal.verify(path, "journal_event", "journal.jsonl") == []
    assert [e["seq"] for e in journal.read(path)] == [1, 2, 3, 4]
