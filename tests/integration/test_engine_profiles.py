"""Engine profiles (docs/engine-profiles.md): the lab gives the same backtest on the engine this test runs on and
on another profile (1.221.0 under `make test` where the default is 1.231.0, 1.231.0 under `make test
ENGINE=1.221.0`), and a node on 1.231.0 trades against the venue on its 2026 profile (user data over the
WebSocket API; the listenKey endpoints answer 410) and reconciles clean.

Each runs only where the profiles' venvs exist (`make setup ENGINE=VERSION` builds one; `.ci/run` builds every
profile that a Python on the machine runs).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, SPECS, tc_env
from opslab import runs, spec
from opslab.datasets import store
from opslab.drills import matrix
from opslab.venue import profiles
from opslab.venue.server import BinanceVenue

PROFILE = "1.231.0"  # the release whose exec client signs in over the WebSocket API
KEY, SECRET = "profile-key-abc123", "profile-secret-def456"
CREDS = {"TC_NODE_KEY": KEY, "TC_NODE_SECRET": SECRET}
# The engine this suite runs on, every profile's environment in this checkout, and another profile than the running one.
RUNNING = runs.versions()["nautilus_trader"]
FOUND = matrix.environments(REPO)
PYTHON = FOUND[PROFILE].python if PROFILE in FOUND else REPO / f".venv-{PROFILE}" / "bin" / "python"
OTHER = next((v for v in sorted(FOUND, reverse=True) if v != RUNNING), "1.221.0" if RUNNING != "1.221.0" else PROFILE)
OTHER_PYTHON = FOUND[OTHER].python if OTHER in FOUND else REPO / f".venv-{OTHER}" / "bin" / "python"
needs_other = pytest.mark.skipif(OTHER not in FOUND, reason=f"no environment holds another engine than {RUNNING}: "
                                 f"`make setup ENGINE={OTHER}` builds .venv-{OTHER}")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROFILE not in FOUND, reason=f"no environment holds nautilus_trader {PROFILE}: `make setup ENGINE={PROFILE}` builds it"),
]


def _tc(python: Path | str, *args: str, artifacts: Path, timeout: float = 300) -> dict[str, Any]:
    proc = subprocess.run([str(python), "-m", "opslab", *args, "--json"], cwd=REPO, env=tc_env(artifacts, **CREDS),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{python} tc {' '.join(args)}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _engine(python: Path | str) -> str:
    code = "import importlib.metadata as m; print(m.version('nautilus_trader'))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _backtest(python: Path | str, root: Path) -> tuple[dict[str, Any], Path]:
    demo = str(SPECS / "demo.yaml")
    _tc(python, "data", "prepare", "--spec", demo, artifacts=root)
    out = _tc(python, "run", "backtest", "--spec", demo, artifacts=root)
    return out["data"]["counters"], Path(out["data"]["run_dir"])


@needs_other
def test_backtest_on_the_other_profile_equals_the_running_engine(tmp_path: Path):
    import sys

    assert RUNNING != OTHER and _engine(OTHER_PYTHON) == OTHER
    ref_counters, ref_dir = _backtest(sys.executable, tmp_path / "ref")
    counters, run_dir = _backtest(OTHER_PYTHON, tmp_path / "profile")
    assert counters == ref_counters and counters["fills"] > 0
    for name in ("orders.json", "positions.json", "final_state.json"):
        assert (run_dir / name).read_bytes() == (ref_dir / name).read_bytes(), name
    # Fills are the same but for the simulated exchange's trade ids: "BINANCE-1-002" on 1.221,
    # "T-<hash>-005" from a later release (stable run to run on each).
    strip = lambda d: [{k: v for k, v in f.items() if k != "trade_id"} for f in json.loads((d / "fills.json").read_text())["fills"]]
    assert strip(run_dir) == strip(ref_dir)
    meta = json.loads((run_dir / "metadata.json").read_text())
    ref_meta = json.loads((ref_dir / "metadata.json").read_text())
    assert meta["versions"]["nautilus_trader"] == OTHER and ref_meta["versions"]["nautilus_trader"] == RUNNING  # each run records its engine
    # One spec, two engines: the config hash is the spec's; the engine-qualified one says which engine ran.
    assert meta["config_hash"] == ref_meta["config_hash"]
    assert meta["engine_config_hash"] != ref_meta["engine_config_hash"]
    assert meta["engine_config_hash"] == spec.engine_config_hash(meta["config_hash"], OTHER)
    assert ref_meta["engine_config_hash"] == spec.engine_config_hash(ref_meta["config_hash"], RUNNING)


@needs_other
def test_a_run_made_on_one_engine_is_refused_on_the_other_and_left_untouched(tmp_path: Path):
    import sys

    from conftest import tree_bytes

    root = tmp_path / "artifacts"
    _backtest(sys.executable, root)
    before = tree_bytes(root / "runs")
    proc = subprocess.run([str(OTHER_PYTHON), "-m", "opslab", "run", "backtest", "--spec", str(SPECS / "demo.yaml")], cwd=REPO,
                          env=tc_env(root), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert (f"run 'demo' ran on another engine (nautilus_trader {RUNNING}; this environment has {OTHER}); use a new run_id"
            in proc.stderr), proc.stderr
    assert tree_bytes(root / "runs") == before


def _spec_text(http_url: str, ws_url: str, bars: int) -> str:
    return f"""schema_version: 1
run_id: profile-node
scenario: {{name: ops_smoke_demo, version: "1.0.0"}}
strategy: {{name: smoke-buy-and-release, version: "1"}}
instrument: BTCUSDT
venue: BINANCE
dataset: {{kind: synthetic, seed: 42, start: "2024-01-01T00:00:00Z", bars: 1440}}
engine:
  kind: node
  node: {{venue_http_url: "{http_url}", venue_ws_url: "{ws_url}", duration_seconds: 40, bars: {bars}, heartbeat_seconds: 0.5,
          connect_timeout_seconds: 10}}
connectivity_readiness:
  venue: BINANCE
  placeholders:
    - {{role: api_key, env: TC_NODE_KEY}}
    - {{role: api_secret, env: TC_NODE_SECRET}}
"""


def test_node_on_the_profile_trades_over_the_ws_api_and_reconciles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert profiles.for_nautilus(PROFILE) == "2026"
    root = tmp_path / "artifacts"
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(root))
    for name, value in CREDS.items():
        monkeypatch.setenv(name, value)
    placeholder = tmp_path / "placeholder.yaml"
    placeholder.write_text(_spec_text("http://127.0.0.1:1", "ws://127.0.0.1:2", 180))
    store.prepare(store.DatasetParams.from_spec(spec.load(placeholder).data))
    venue = BinanceVenue(spec.load(placeholder), speed=1800, binance_api="2026").start()
    signed_in: list[tuple[str | None, int]] = []
    try:
        spec_file = tmp_path / "node.yaml"
        spec_file.write_text(_spec_text(venue.url, venue.ws_url, 180))
        proc = subprocess.Popen([str(PYTHON), "-m", "opslab", "run", "node", "--spec", str(spec_file), "--json"], cwd=REPO,
                                env=tc_env(root, **CREDS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            end = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < end:  # the exec client's session on /ws-api/v3, while it lasts
                assert venue.hub is not None
                with venue.hub.wsapi.lock:
                    signed_in = signed_in or [(s.api_key, len(s.subs)) for s in venue.hub.wsapi.sessions.values() if s.authorized_ms]
                time.sleep(0.05)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        venue_trades = venue.exchange.snapshot()["trades"]
    finally:
        venue.stop()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert signed_in == [(KEY, 1)], "session.logon + userDataStream.subscribe over the WebSocket API"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "changed" and result["data"]["counters"]["fills"] > 0
    run_dir = root / "runs" / "profile-node"
    life = json.loads((run_dir / "node" / "lifecycle.json").read_text())
    assert [t["state"] for t in life["transitions"]][:4] == ["starting", "connected", "reconciled", "running"]
    assert life["state"] == "stopped" and life["stop_reason"] == "bars"
    fills = json.loads((run_dir / "fills.json").read_text())["fills"]
    assert sorted(f["trade_id"] for f in fills) == sorted(str(t["id"]) for t in venue_trades)  # fills came over the user stream
    logs = "".join(p.read_text(errors="replace") for p in (run_dir / "node").glob("node*.log"))
    assert "/ws-api/v3" in logs and KEY not in logs
    recon = _tc(PYTHON, "reconcile", "--spec", str(spec_file), artifacts=root)
    doc = json.loads((run_dir / "reconciliation.json").read_text())
    assert recon["status"] in ("changed", "ok") and doc["status"] == "match" and doc["summary"]["mismatches"] == 0


def test_pip_install_beside_nautilus_trader_1231_resolves_in_a_fresh_venv(tmp_path: Path):
    """What a user on the current release does: a fresh venv of the profile's Python, then `pip install <the lab>
    nautilus_trader==1.231.0`. Resolved (pip --dry-run --report) from the package index, not from the locks."""
    home = next(line.split("=", 1)[1].strip() for line in (PYTHON.parent.parent / "pyvenv.cfg").read_text().splitlines()
                if line.startswith("home"))
    base = next(p for p in (Path(home) / "python3", Path(home) / "python") if p.exists())
    subprocess.run([str(base), "-m", "venv", str(tmp_path / "fresh")], check=True, timeout=120)
    fresh = tmp_path / "fresh" / "bin" / "python"
    assert subprocess.run([str(fresh), "-c", "import nautilus_trader"], capture_output=True).returncode != 0, "a fresh venv"
    report = tmp_path / "report.json"
    proc = subprocess.run([str(fresh), "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check", "--report", str(report),
                           str(REPO), "nautilus_trader==1.231.0"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}
    assert resolved["nautilus-trader"] == "1.231.0" and resolved["opslab"]
    for needed in ("matplotlib", "websockets", "jsonschema", "jsonschema-rs", "pyyaml", "prometheus-client", "aiohttp"):
        assert needed in resolved, f"{needed}: not installed with the lab (pyproject.toml's dependencies)"
