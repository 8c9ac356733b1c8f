"""A real TradingNode with NautilusTrader's cache database on the Redis `tc run node` starts itself (spec
engine.node.cache_database, no --cache-db-url): the node writes its state there, a SIGKILL of the node takes
the Redis along (nothing left listening), the restart's Redis loads the same files and the node resumes
from them; node/cache_db.json records the key counts before and after and the node/cache/venue comparison,
the report shows them and `tc artifacts verify` accepts the Redis files in the run folder."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_tc, tc_env
from opslab import cachedb, contracts, runs, spec
from opslab.datasets import store
from opslab.venue import profiles
from opslab.venue.server import BinanceVenue
from venue_spec import wait_for_node as _wait

pytestmark = [pytest.mark.integration, pytest.mark.skipif(cachedb.missing() is not None, reason=f"{cachedb.missing()}")]
CREDS = {"TC_NODE_KEY": "cache-key-1", "TC_NODE_SECRET": "cache-secret-2"}
NODE_PROFILE = profiles.for_nautilus(runs.versions()["nautilus_trader"])


def _spec_text(http_url: str, ws_url: str, bars: int) -> str:
    return f"""schema_version: 1
run_id: node-cache
scenario: {{name: ops_smoke_demo, version: "1.0.0"}}
strategy: {{name: smoke, version: "1"}}
instrument: BTCUSDT
venue: BINANCE
dataset: {{kind: synthetic, seed: 42, start: "2024-01-01T00:00:00Z", bars: 1440}}
engine:
  kind: node
  node: {{venue_http_url: "{http_url}", venue_ws_url: "{ws_url}", duration_seconds: 40, bars: {bars}, heartbeat_seconds: 0.5,
          connect_timeout_seconds: 10, cache_database: {{flush_on_start: false}}}}
connectivity_readiness:
  venue: BINANCE
  placeholders:
    - {{role: api_key, env: TC_NODE_KEY}}
    - {{role: api_secret, env: TC_NODE_SECRET}}
"""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_node_with_a_cache_database_survives_a_sigkill_and_resumes_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "artifacts"
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(root))
    for name, value in CREDS.items():
        monkeypatch.setenv(name, value)
    placeholder = tmp_path / "placeholder.yaml"
    placeholder.write_text(_spec_text("http://127.0.0.1:1", "ws://127.0.0.1:2", 300))
    store.prepare(store.DatasetParams.from_spec(spec.load(placeholder).data))
    venue = BinanceVenue(spec.load(placeholder), speed=300, binance_api=NODE_PROFILE).start()
    try:
        spec_file = tmp_path / "node.yaml"
        spec_file.write_text(_spec_text(venue.url, venue.ws_url, 120))
        run_dir = root / "runs" / "node-cache"
        doc_path = contracts.artifact("node_cache_db").at(run_dir)
        proc = subprocess.Popen([sys.executable, "-m", "opslab", "run", "node", "--spec", str(spec_file)], cwd=REPO,
                                env=tc_env(root, **CREDS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait(lambda: venue.exchange.state["trades"], proc, 30, "the first fill at the venue")
            first = json.loads(doc_path.read_text())
            port = int(first["database"]["url"].rsplit(":", 1)[1])
            assert first["database"]["managed"] and first["before"]["keys"] == 0 and first["after"] is None
            _wait(lambda: cachedb.key_counts("127.0.0.1", port).get("orders", 0) >= 2, proc, 10, "the node's orders in its cache database")
        finally:
            proc.kill()  # SIGKILL: the node's Redis is tied to it and must go too
            proc.communicate()
        deadline = time.monotonic() + 10
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _listening(port), "the lab's redis-server outlived the SIGKILLed node"
        assert (run_dir / "node" / "cache_db" / "appendonlydir").is_dir()

        venue.exchange.speed = 2400
        done = run_tc("run", "node", "--spec", str(spec_file), artifacts=root, timeout=120, **CREDS)
        assert done.code == 0, done.out + done.err
        doc = json.loads(doc_path.read_text())
        assert contracts.errors_for("node_cache_db", doc, str(doc_path)) == []
        # the restart found what the killed node wrote (its Redis loaded the append-only file) and NautilusTrader loaded it
        assert doc["before"]["key_counts"]["orders"] >= 2 and doc["before"]["key_counts"]["accounts"] == 1
        assert doc["loaded"]["orders"] >= 2 and doc["after"]["keys"] >= doc["before"]["keys"]
        assert set(doc["comparison"]) == {"open_orders", "position_quantity"}
        assert all({"node", "cache_db", "venue", "agree"} <= set(item) for item in doc["comparison"].values())
        assert not _listening(int(doc["database"]["url"].rsplit(":", 1)[1]))  # stopped with the run
        report = (run_dir / "report.md").read_text()
        assert "## Cache database" in report and "| orders |" in report and "| position_quantity |" in report
        page = (run_dir / "report.html").read_text()
        assert '<section id="cache-database">' in page and "position_quantity" in page
        verified = run_tc("artifacts", "verify", artifacts=root)
        assert verified.code == 0, verified.out + verified.err
    finally:
        venue.stop()
