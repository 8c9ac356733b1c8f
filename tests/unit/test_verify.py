"""`tc artifacts verify` covers every artifact kind of the registry, with and without TC_MANIFEST_KEY.

One root is built with the real writers (run init, a drill, a CSV import with its quality record, the kill
switch, the venue's state and stats, two alert notifications); the registry is walked and every kind's file is
edited, truncated and deleted in turn: verify must name it. A kind added to the registry without an instance
here or a row in verify.COVER fails these tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, MATRIX_EVIDENCE, SPECS, tc_env
from opslab import contracts, digests, fs, journal, verify
from opslab.alerts import notifications

KEYS = {"unkeyed": None, "keyed": "lab-secret"}
CARD = {"schema_version": 1, "total": 1, "passed": 1, "failed": 0, "finished_at": "2024-01-01T00:00:00Z",
        "drills": [{"drill": "mismatch", "verdict": "pass", "detected": True, "runbook": "runbooks/mismatch.md",
                    "time_to_detect": {"value": 1, "unit": "ms"}}]}
PAYLOAD = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "lab",
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
           "alerts": [{"status": "firing", "labels": {"alertname": "TcTest"}, "annotations": {"summary": "s"},
                       "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "4c8b8ad8a1f7b3e2"}]}


def _env(mp: pytest.MonkeyPatch, root: Path, key: str | None) -> None:
    mp.setenv("TC_ARTIFACTS_DIR", str(root))
    if key:
        mp.setenv(digests.KEY_ENV, key)
    else:
        mp.delenv(digests.KEY_ENV, raising=False)


def _tc(root: Path, key: str | None, *args: str) -> None:
    extra = {digests.KEY_ENV: key} if key else {}
    done = subprocess.run([sys.executable, "-m", "opslab", *args], env=tc_env(root, SOURCE_DATE_EPOCH="1700000000", **extra),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _build(root: Path, key: str | None) -> None:
    from opslab.drills import matrix, runner
    from opslab.runs.run import run_files
    from opslab.venue import exchange, faults, stats

    _tc(root, key, "run", "init", "--spec", str(SPECS / "minimal.json"))
    _tc(root, key, "drill", "run", "mismatch")
    _tc(root, key, "data", "import", "--csv", str(FIXTURES / "data/btcusdt-1m-binance-format.csv"), "--id", "mine",
        "--map", "ts_close=open_time", "--time-is", "open")
    _tc(root, key, "killswitch", "engage", "--reason", "verify coverage")
    member = root.parent / "coll-0.json"  # a one-run set and its collection (tc artifacts collect)
    member.write_text(json.dumps({**json.loads((SPECS / "minimal.json").read_text()), "run_id": "coll-0"}))
    _tc(root, key, "run", "backtest", "--spec", str(member))
    _tc(root, key, "artifacts", "collect", "coll", "--count", "1")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root, key)
        runner._record(CARD, [])  # the scorecard and its page, as `tc drill run --all` ends
        matrix.record(json.loads(MATRIX_EVIDENCE.read_text()))  # the matrix, its history and page, as `tc drill matrix` ends
        for _ in range(3):
            notifications.record(PAYLOAD, root)
        state = contracts.artifact("venue_state").at(root, "minimal")
        exchange.Exchange("minimal", "mine", [], {"USDT": "1000"}, 1.0, state, lambda *a: None, dict)
        stats.VenueStats("minimal", faults.VenueState()).write()
        # Run kinds a run init does not write (a backtest's outputs, a node's files): planted in a copy of the run, then
        # its manifest rewritten over them as a run writes it, so each kind's path is walked through the manifest's cover.
        folder = root / "runs/planted"
        shutil.copytree(root / "runs/minimal", folder)
        for art in contracts.ARTIFACTS.values():
            if art.scope == "run" and not any(art.matches(rel) for rel, kind in fs.walk(folder) if kind == "file"):
                path = art.at(folder, *["x"] * art.path.count("*"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b'{"planted": true}\n' if art.schema else b"planted bytes\n")
        digests.write_manifest(folder / "manifest.json", "planted", folder, run_files(folder))


@pytest.fixture(scope="module", params=list(KEYS))
def built(request, tmp_path_factory):
    """(root, key) of a root holding every artifact kind, built once per key."""
    root = tmp_path_factory.mktemp(request.param) / "artifacts"
    _build(root, KEYS[request.param])
    return root, KEYS[request.param]


@pytest.fixture
def copy(built, tmp_path, monkeypatch):
    """A fresh copy of the built root, the environment pointing at it (and the key set when built with one)."""
    root = tmp_path / "artifacts"
    shutil.copytree(built[0], root, symlinks=True)
    _env(monkeypatch, root, built[1])
    return root


def _problems() -> list[str]:
    return verify.verify(all_runs=True).details or []


def _instance(root: Path, art: contracts.Artifact) -> str:
    """The relative path (from the root) of one file of kind ART in the built root."""
    scope = root / "runs/planted" if art.scope == "run" else root
    prefix = "runs/planted/" if art.scope == "run" else ""
    found = sorted(rel for rel, kind in fs.walk(scope) if kind == "file" and contracts.classify(rel, art.scope)
                   and contracts.classify(rel, art.scope)[0].name == art.name)
    assert found, f"{art.name}: the built root has no {art.path}; add its writer to _build"
    return prefix + found[0]


def _edit(path: Path) -> None:
    """A change a reader would care about: a value in the document (the middle line of a history), a byte otherwise."""
    raw = path.read_bytes()
    if path.suffix in (".json", ".jsonl"):
        lines = raw.split(b"\n")[:-1] if path.suffix == ".jsonl" else [raw]
        at = (len(lines) - 1) // 2
        doc = json.loads(lines[at])

        def change(node):
            for k, v in (node.items() if isinstance(node, dict) else enumerate(node)):
                if k in ("seal", "hmac", "schema_version", "hash", "prev", "seq"):
                    continue
                if isinstance(v, bool):
                    node[k] = not v
                    return True
                if isinstance(v, int):
                    node[k] = v + 1
                    return True
                if isinstance(v, (dict, list)) and change(v):
                    return True
            for k, v in (node.items() if isinstance(node, dict) else enumerate(node)):
                if isinstance(v, str) and k not in ("seal", "hmac", "hash", "prev"):
                    node[k] = v[:-1] + ("0" if v[-1:] != "0" else "1")
                    return True
            return False

        assert change(doc), path
        lines[at] = json.dumps(doc).encode()
        path.write_bytes(b"\n".join(lines) + (b"\n" if path.suffix == ".jsonl" else b""))
    else:
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0x01]) + raw[middle + 1:])


TAMPER = {
    "edit": _edit,
    "truncate": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "delete": lambda p: p.unlink(),
}


def test_every_registry_kind_has_a_cover():
    assert set(verify.COVER) == set(contracts.ARTIFACTS), "a new artifact kind needs a row in verify.COVER"
    assert [name for name, how in verify.COVER.items() if how == verify.CHANGE_FEED] == ["generation"]
    assert [name for name, how in verify.COVER.items() if how == verify.LIVE] == ["node_registration", "node_wake_socket"]


def test_the_built_root_holds_every_kind_and_verifies_untouched(built, copy):
    for art in contracts.ARTIFACTS.values():
        if verify.COVER[art.name] != verify.LIVE:  # a running node's files exist only while it runs (tests/unit/test_nodes.py)
            _instance(copy, art)
    # the planted documents are not valid ones (schema problems), nothing else is a problem
    assert all(p.startswith("runs/planted/") and "digest" not in p for p in _problems()), _problems()
    shutil.rmtree(copy / "runs/planted")
    assert _problems() == []


# A deleted collection is not among them: it is derived, nothing records that one was written (collect writes it again).
@pytest.mark.parametrize("name, how", [(n, how) for n, cover in verify.COVER.items() if cover not in (verify.CHANGE_FEED, verify.LIVE)
                                       for how in TAMPER if not (how == "delete" and cover == verify.COLLECTION)])
def test_every_kind_edited_truncated_or_deleted_is_found_and_named(built, copy, name, how):
    art = contracts.artifact(name)
    rel = _instance(copy, art)
    before = set(_problems())
    TAMPER[how](copy / rel)
    after = set(_problems()) - before
    named = rel if not rel.startswith("state/kill_switch") else "kill switch"
    assert any(named in p for p in after), (rel, how, sorted(after))


def test_a_quality_record_edited_to_passed_is_found_and_refuses_the_run(built, copy):
    from opslab import spec as spec_mod
    from opslab.datasets import resolve
    from opslab.errors import InputError

    path = copy / "datasets/mine/quality.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "passed": False, "failed_checks": ["gaps"]}))
    assert any("datasets/mine/quality.json: /seal: does not match" in p for p in _problems())
    spec = spec_mod.load(SPECS / "minimal.json")
    spec.data["dataset"] = {"kind": "imported", "id": "mine"}
    with pytest.raises(InputError, match="quality.json: /seal: does not match"):
        resolve.quality_gate(spec)
    path.unlink()
    with pytest.raises(InputError, match="quality.json: missing"):
        resolve.quality_gate(spec)


@pytest.mark.parametrize("built", ["keyed"], indirect=True)  # the key is what makes a recomputed seal or chain detectable
def test_keyed_a_rechained_alert_history_and_a_recomputed_seal_are_found(built, copy):
    log = copy / "alerts/notifications.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    prev = journal.GENESIS
    for rec in lines:  # edit the first line, then re-chain every line after it: the chain alone is satisfied
        rec["notification"]["receiver"] = "forged" if rec["seq"] == 1 else rec["notification"]["receiver"]
        rec["prev"] = prev
        rec["hash"] = prev = journal.event_hash(rec)
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert any("notifications.jsonl:3: hash differs from its anchor" in p for p in _problems())
    state = copy / "venue/minimal/state.json"
    doc = json.loads(state.read_text())
    doc["balances"]["USDT"]["free"] = "999999"
    state.write_text(json.dumps({**doc, "seal": "sha256:" + __import__("hashlib").sha256(fs.canonical_json(
        {k: v for k, v in doc.items() if k != "seal"})).hexdigest()}))
    assert any("venue/minimal/state.json: /seal: not keyed, but TC_MANIFEST_KEY is set" in p for p in _problems())


def test_the_receiver_refuses_to_append_to_a_truncated_history(built, copy):
    from opslab.errors import InputError

    log = copy / "alerts/notifications.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:1]))
    with pytest.raises(InputError, match="truncated or rewritten"):
        notifications.record(PAYLOAD, copy)
    log.unlink()
    with pytest.raises(InputError, match="missing or empty"):
        notifications.record(PAYLOAD, copy)
    (copy / contracts.artifact("alert_notifications_anchor").path).unlink()
    assert notifications.record(PAYLOAD, copy)["seq"] == 1  # both moved away: a new history starts
    assert _problems() == [] or not any("alerts/" in p for p in _problems())
