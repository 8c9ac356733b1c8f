"""Synthetic dataset: invariants, determinism, idempotent prepare, tamper detection, fingerprint."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest

from conftest import SPECS
from opslab.datasets import store


def _rows(params: store.DatasetParams) -> list[dict[str, str]]:
    text = b"".join(store.generate_rows(params)).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("seed", [0, 1, 42, 4294967295])
def test_ohlcv_invariants(seed):
    rows = _rows(store.DatasetParams(seed, "2024-01-01T00:00:00Z", 3000, "42000.00"))
    assert len(rows) == 3000
    previous = ""
    for row in rows:
        o, h, low, c, v = (float(row[k]) for k in ("open", "high", "low", "close", "volume"))
        assert low <= o <= h and low <= c <= h and v > 0
        assert row["ts_close"] > previous
        previous = row["ts_close"]
    assert rows[0]["ts_close"] == "2024-01-01T00:01:00Z"
    assert rows[-1]["ts_close"] == "2024-01-03T02:00:00Z"


def test_same_params_same_bytes_other_seed_other_bytes():
    a = store.DatasetParams(7, "2024-01-01T00:00:00Z", 500, "42000.00")
    b = store.DatasetParams(8, "2024-01-01T00:00:00Z", 500, "42000.00")
    assert b"".join(store.generate_rows(a)) == b"".join(store.generate_rows(a))
    assert b"".join(store.generate_rows(a)) != b"".join(store.generate_rows(b))
    assert a.dataset_id != b.dataset_id


def test_fingerprint_streams_and_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 20_000
    path.write_bytes(payload)
    result = store.fingerprint_op(path)
    assert result.data["fingerprint"] == "sha256:" + hashlib.sha256(payload).hexdigest() and result.data["bytes"] == len(payload)


def test_prepare_is_idempotent_and_detects_tampering(lab):
    spec = str(SPECS / "minimal.json")
    first = lab("data", "prepare", "--spec", spec, "--json")
    assert first.code == 0 and first.json()["status"] == "changed"
    manifest = first.json()["data"]["manifest"]
    folder = lab.root / "datasets" / manifest["dataset_id"]
    bars = folder / "bars.csv"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    second = lab("data", "prepare", "--spec", spec, "--json")
    assert second.code == 0 and second.json()["status"] == "ok"
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    check = lab("data", "prepare", "--spec", spec, "--check", "--json")
    assert check.json()["status"] == "ok"

    bars.write_bytes(bars.read_bytes().replace(b"42000.00", b"42000.01", 1) if b"42000.00" in bars.read_bytes() else bars.read_bytes() + b"x")
    tampered = lab("data", "prepare", "--spec", spec)
    assert tampered.code == 2
    assert "does not match its manifest" in tampered.err and "--force" in tampered.err
    assert tampered.err.count("\n") == 1
    forced = lab("data", "prepare", "--spec", spec, "--force", "--json")
    assert forced.code == 0 and forced.json()["status"] == "changed"
    assert lab("data", "prepare", "--spec", spec, "--json").json()["status"] == "ok"
    assert "sha256:" + hashlib.sha256(bars.read_bytes()).hexdigest() == manifest["fingerprint"]


def test_check_mode_writes_nothing(lab):
    result = lab("data", "prepare", "--spec", str(SPECS / "minimal.json"), "--check", "--json")
    assert result.code == 0 and result.json()["status"] == "changed"
    assert not (lab.root / "datasets").exists() or not any((lab.root / "datasets").iterdir())


def test_fingerprint_command(lab, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello\n")
    result = lab("data", "fingerprint", str(path), "--json")
    assert result.json()["data"]["fingerprint"] == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert lab("data", "fingerprint", str(tmp_path / "missing")).code == 2
    assert lab("data", "fingerprint", str(tmp_path)).code == 2
