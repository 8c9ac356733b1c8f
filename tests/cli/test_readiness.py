"""Readiness: set/unset/empty placeholders, no socket, and no secret value ever written or printed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from conftest import SPECS

SPEC = str(SPECS / "connectivity.yaml")
SECRET_KEY, SECRET_VALUE = "k-7f3a9c2e-do-not-leak", "s-91b2c4d8-do-not-leak"


def test_unset_empty_and_set(lab):
    unset = lab("connectivity", "readiness", "--spec", SPEC, "--json")
    assert unset.code == 4 and unset.json()["data"]["readiness"]["missing"] == ["TC_BINANCE_API_KEY", "TC_BINANCE_API_SECRET"]
    empty = lab("connectivity", "readiness", "--spec", SPEC, "--json", TC_BINANCE_API_KEY="", TC_BINANCE_API_SECRET="x")
    assert empty.code == 4
    states = {p["env"]: p["state"] for p in empty.json()["data"]["readiness"]["placeholders"]}
    assert states == {"TC_BINANCE_API_KEY": "empty", "TC_BINANCE_API_SECRET": "set"}
    ready = lab("connectivity", "readiness", "--spec", SPEC, "--json", TC_BINANCE_API_KEY="a", TC_BINANCE_API_SECRET="b")
    assert ready.code == 0 and ready.json()["data"]["readiness"]["ready"] is True
    meta = json.loads((lab.root / "runs/connectivity/metadata.json").read_text())
    assert meta["connectivity_readiness"] == {"ready": True, "placeholders": 2, "missing": 0, "evaluated_at": "2023-11-14T22:13:20Z"}
    assert "## Connectivity readiness" in (lab.root / "runs/connectivity/report.md").read_text()
    assert lab("artifacts", "verify", "--all").code == 0


def test_secret_values_never_reach_artifacts_or_output(lab):
    result = lab("connectivity", "readiness", "--spec", SPEC, "--json", TC_BINANCE_API_KEY=SECRET_KEY, TC_BINANCE_API_SECRET=SECRET_VALUE)
    assert result.code == 0
    blobs = [result.out, result.err] + [p.read_bytes().decode("utf-8", "replace") for p in lab.root.rglob("*") if p.is_file()]
    assert not any(SECRET_KEY in b or SECRET_VALUE in b for b in blobs)


def test_no_socket_is_opened(monkeypatch, tmp_path):
    from opslab import spec
    from opslab.connectivity import readiness

    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("TC_BINANCE_API_KEY", "x")

    def no_network(*args, **kwargs):
        raise AssertionError("readiness must not open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    result = readiness.evaluate(spec.load(SPEC))
    assert result.exit_code == 4 and result.data["readiness"]["missing"] == ["TC_BINANCE_API_SECRET"]


@pytest.mark.parametrize("block, needle", [
    ({"venue": "BINANCE", "placeholders": [{"role": "api_key", "env": "BINANCE_KEY"}]}, "does not match '^TC_"),
    ({"venue": "BINANCE", "placeholders": [{"role": "api_key", "env": "TC_A"}, {"role": "api_key", "env": "TC_A"}]}, "TC_A is used twice"),
    ({"venue": "BINANCE", "placeholders": [{"role": "api_key", "env": "TC_A"}, {"role": "api_secret", "env": "TC_A"}]},
     "used for two roles (api_key and api_secret)"),
    ({"venue": "BINANCE", "placeholders": []}, "should be non-empty"),
    ({"venue": "BINANCE", "placeholders": [{"role": "api_key", "env": "TC_A", "value": "x"}]}, "unknown field(s)"),
])
def test_bad_blocks(lab, tmp_path, block, needle):
    data = yaml.safe_load(Path(SPEC).read_text())
    data["connectivity_readiness"] = block
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    result = lab("spec", "validate", str(path))
    assert result.code == 2 and needle in result.err and result.err.count("\n") == 1, result.err
