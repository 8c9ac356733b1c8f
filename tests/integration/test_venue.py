"""The venue without a spec (the lab's built-in dataset) over real HTTP on 127.0.0.1: every fault mode, the admin endpoint, and the probe against it."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time

import pytest

from conftest import REPO, SPECS, tc_env
from opslab.venue.client import DepthTracker, VenueClient, VenueDown
from opslab.venue.faults import parse_faults
from opslab.venue.server import BinanceVenue
from opslab.errors import InputError

pytestmark = pytest.mark.integration
SPEC = str(SPECS / "connectivity.yaml")
DEPTH = "/api/v3/depth?symbol=BTCUSDT"  # Binance requires the symbol


def _get(venue: BinanceVenue, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, object]:
    conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=5)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(raw) if raw else None
    finally:
        conn.close()


def test_public_endpoints_answer_like_an_exchange():
    with BinanceVenue() as venue:
        assert _get(venue, "/api/v3/ping")[:1] == (200,)
        status, _, info = _get(venue, "/api/v3/exchangeInfo")
        assert status == 200 and info["symbols"][0]["symbol"] == "BTCUSDT"
        first = _get(venue, "/api/v3/depth?symbol=BTCUSDT&limit=3")[2]
        second = _get(venue, "/api/v3/depth?symbol=BTCUSDT&limit=3")[2]
        assert second["lastUpdateId"] == first["lastUpdateId"] + 1 and len(first["bids"]) == 3
        klines = _get(venue, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2")[2]
        assert len(klines) == 2 and klines[1][0] - klines[0][0] == 60_000
        assert _get(venue, "/nope")[0] == 404


def test_latency_fault():
    with BinanceVenue(faults=parse_faults(["latency=150"])) as venue:
        start = time.monotonic()
        assert _get(venue, "/api/v3/ping")[0] == 200
        assert time.monotonic() - start >= 0.15


def test_error_5xx_fault():
    with BinanceVenue(faults=parse_faults(["error_5xx"])) as venue:
        assert _get(venue, "/api/v3/time")[0] == 503


def test_rate_limit_fault_has_retry_after_and_budget():
    with BinanceVenue(faults=parse_faults(["rate_limit=10/30"])) as venue:
        assert _get(venue, DEPTH)[0] == 200
        status, headers, _ = _get(venue, DEPTH)
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "10"
        status, headers, _ = _get(venue, DEPTH)
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 30


def test_drop_fault_closes_without_answer_and_drop_k_recovers():
    with BinanceVenue(faults=parse_faults(["drop=2"])) as venue:
        for _ in range(2):
            with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
                _get(venue, "/api/v3/ping")
        assert _get(venue, "/api/v3/ping")[0] == 200


def test_frozen_time_fault():
    with BinanceVenue(faults=parse_faults(["frozen_time"])) as venue:
        a = _get(venue, "/api/v3/time")[2]["serverTime"]
        time.sleep(0.02)
        assert _get(venue, "/api/v3/time")[2]["serverTime"] == a
    with BinanceVenue() as venue:
        a = _get(venue, "/api/v3/time")[2]["serverTime"]
        time.sleep(0.02)
        assert _get(venue, "/api/v3/time")[2]["serverTime"] > a


def test_stale_book_fault():
    with BinanceVenue(faults=parse_faults(["stale_book"])) as venue:
        a, b = (_get(venue, DEPTH)[2] for _ in range(2))
        assert a["lastUpdateId"] == b["lastUpdateId"] and a["E"] == b["E"]


def test_sequence_gap_fault():
    with BinanceVenue(faults=parse_faults(["sequence_gap=4"])) as venue:
        a, b = (_get(venue, DEPTH)[2]["lastUpdateId"] for _ in range(2))
        assert b - a == 5


def test_admin_endpoint_switches_faults_at_runtime():
    with BinanceVenue() as venue:
        assert _get(venue, "/admin/faults", "POST", json.dumps({"faults": ["error_5xx"]}).encode())[0] == 200
        assert _get(venue, "/api/v3/ping")[0] == 503
        assert _get(venue, "/admin/faults")[2]["faults"] == {"error_5xx": True}
        assert _get(venue, "/admin/faults", "POST", b'{"faults": ["warp_drive"]}')[0] == 400
        assert _get(venue, "/admin/faults", "DELETE")[0] == 200
        assert _get(venue, "/api/v3/ping")[0] == 200


@pytest.mark.parametrize("bad", ["warp", "latency=fast", "rate_limit=0", "drop=x", "stale_book=1"])
def test_bad_fault_specs(bad):
    with pytest.raises(InputError):
        parse_faults([bad])


def test_venue_binds_loopback_only():
    with pytest.raises(InputError):
        BinanceVenue(host="0.0.0.0")


def test_client_and_tracker_detect_gap_and_staleness():
    with BinanceVenue() as venue:
        tracker = DepthTracker(VenueClient(venue.url), stale_after_polls=2)
        tracker.poll()
        venue.set_faults({"sequence_gap": 3})
        assert tracker.poll().verdict == "resynced"
        venue.set_faults({"stale_book": True})
        verdicts = [tracker.poll().verdict for _ in range(3)]
        assert "stale" in verdicts


def test_client_gives_up_after_bounded_retries():
    with BinanceVenue(faults={"drop": True}) as venue:
        client = VenueClient(venue.url, max_retries=2, backoff_base_s=0.01)
        with pytest.raises(VenueDown):
            client.get("/api/v3/ping")
        assert client.record.failures == 3 and client.record.backoff_waits == [0.01, 0.02]


def test_serve_cli_prints_url_probe_up_then_down(tmp_path):
    root = tmp_path / "artifacts"
    proc = subprocess.Popen([sys.executable, "-m", "opslab", "venue", "serve", "--port", "0"], cwd=REPO, env=tc_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:") and " futures websocket ws://127.0.0.1:" in line
        url = line.split()[2]
        up = subprocess.run([sys.executable, "-m", "opslab", "connectivity", "probe", "--spec", SPEC, "--url", f"{url}/api/v3/ping", "--json"],
                            cwd=REPO, env=tc_env(root), capture_output=True, text=True, timeout=60)
        assert up.returncode == 0, up.stderr
        probe = json.loads(up.stdout)["data"]["probe"]
        assert probe["outcome"] == "up" and probe["http_status"] == 200 and probe["latency_ms"] > 0
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out
    down = subprocess.run([sys.executable, "-m", "opslab", "connectivity", "probe", "--spec", SPEC, "--url", f"{url}/api/v3/ping", "--json"],
                          cwd=REPO, env=tc_env(root), capture_output=True, text=True, timeout=60)
    assert down.returncode == 4
    probe = json.loads(down.stdout)["data"]["probe"]
    assert probe["outcome"] == "down" and probe["error_class"] == "refused"
    verify = subprocess.run([sys.executable, "-m", "opslab", "artifacts", "verify", "--all"], cwd=REPO, env=tc_env(root), capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout
    report = (root / "runs/connectivity/report.md").read_text()
    assert "## Connectivity probe" in report and "refused" in report


def test_probe_timeout_and_http_error(tmp_path):
    root = tmp_path / "artifacts"
    with BinanceVenue(faults=parse_faults(["latency=1500"])) as venue:
        slow = subprocess.run([sys.executable, "-m", "opslab", "connectivity", "probe", "--spec", SPEC, "--url", f"{venue.url}/api/v3/ping",
                               "--timeout-ms", "200", "--json"], cwd=REPO, env=tc_env(root), capture_output=True, text=True, timeout=60)
        assert slow.returncode == 4 and json.loads(slow.stdout)["data"]["probe"]["error_class"] == "timeout"
        venue.set_faults({"error_5xx": True})
        err = subprocess.run([sys.executable, "-m", "opslab", "connectivity", "probe", "--spec", SPEC, "--url", f"{venue.url}/api/v3/ping", "--json"],
                             cwd=REPO, env=tc_env(root), capture_output=True, text=True, timeout=60)
        probe = json.loads(err.stdout)["data"]["probe"]
        assert err.returncode == 4 and probe["error_class"] == "http_error" and probe["http_status"] == 503


def test_the_admin_endpoint_bounds_its_body_before_reading_it():
    import http.client

    with BinanceVenue() as venue:
        conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=10)
        try:
            conn.putrequest("POST", "/admin/faults")
            conn.putheader("Content-Length", str(10 << 30))  # 10 GiB announced, nothing sent
            conn.endheaders()
            resp = conn.getresponse()
            assert resp.status == 413 and "at most" in resp.read().decode()
        finally:
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=10)
        try:
            body = b'{"faults": ["drop"], "faults": []}'  # duplicate keys: refused by the strict parser
            conn.request("POST", "/admin/faults", body=body, headers={"Content-Length": str(len(body))})
            resp = conn.getresponse()
            assert resp.status == 400 and "duplicate key" in resp.read().decode()
        finally:
            conn.close()
