"""`tc run node` checks that its venue answers before anything of the run is written (opslab/runs/preflight.py):
a closed port, an HTTP error on /api/v3/ping or a silent server is exit 2 within seconds, one line naming the URL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import SPECS, run_tc
from venue_spec import closed_port, http_venue, silent_port

NODE = SPECS / "node-demo.yaml"
CREDS = {"TC_BINANCE_API_KEY": "k-preflight", "TC_BINANCE_API_SECRET": "s-preflight"}
LIVENESS_S = 30  # generous: the check's bound is a couple of seconds per step, the node's own connect timeout 45 s


def _node(root: Path, http_port: int, ws_port: int, *extra: str):
    started = time.monotonic()
    done = run_tc("run", "node", "--spec", str(NODE), "--venue-url", f"http://127.0.0.1:{http_port}",
                  "--venue-ws-url", f"ws://127.0.0.1:{ws_port}", *extra, artifacts=root, timeout=120, **CREDS)
    seconds = time.monotonic() - started
    print(f"tc run node {' '.join(extra)} -> exit {done.code} after {seconds:.2f} s: {done.err.strip()}")
    return done, seconds


def _refused_in_one_line(done, seconds: float, root: Path, needle: str) -> None:
    assert done.code == 2, done.err
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.err, lines
    assert seconds < LIVENESS_S
    assert not (root / "runs").exists()  # nothing of the run: no folder, no lock


def test_a_closed_http_port_is_exit_2_naming_the_url(tmp_path: Path):
    root = tmp_path / "artifacts"
    with closed_port() as http_port, closed_port() as ws_port:
        done, seconds = _node(root, http_port, ws_port)
    _refused_in_one_line(done, seconds, root, f"error: --venue-url: http://127.0.0.1:{http_port}: venue unreachable: connection refused "
                                              "(GET /api/v3/ping)")


@pytest.mark.parametrize("status", [500, 404])
def test_an_http_error_on_ping_is_exit_2_naming_the_status(tmp_path: Path, status: int):
    root = tmp_path / "artifacts"
    with http_venue(status) as http_port, silent_port() as ws:
        done, seconds = _node(root, http_port, ws.getsockname()[1])
    _refused_in_one_line(done, seconds, root, f"--venue-url: http://127.0.0.1:{http_port}: venue unreachable: GET /api/v3/ping answered "
                                              f"HTTP {status}")


def test_a_closed_websocket_port_is_exit_2_naming_that_url(tmp_path: Path):
    root = tmp_path / "artifacts"
    with http_venue(200) as http_port, closed_port() as ws_port:
        done, seconds = _node(root, http_port, ws_port)
    _refused_in_one_line(done, seconds, root, f"error: --venue-ws-url: ws://127.0.0.1:{ws_port}: venue unreachable: connection refused "
                                              f"(TCP connect to 127.0.0.1:{ws_port})")


def test_a_venue_that_never_answers_times_out_within_the_bound(tmp_path: Path):
    root = tmp_path / "artifacts"
    with silent_port() as http, silent_port() as ws:
        done, seconds = _node(root, http.getsockname()[1], ws.getsockname()[1])
    _refused_in_one_line(done, seconds, root, "venue unreachable: timed out after 2 s (GET /api/v3/ping)")
    assert seconds >= 2  # it did wait for the answer, up to its bound


def test_the_spec_field_is_named_when_the_url_comes_from_the_spec(tmp_path: Path):
    root = tmp_path / "artifacts"
    with closed_port() as http_port, closed_port() as ws_port:
        spec = tmp_path / "node.yaml"
        spec.write_text(NODE.read_text().replace("http://127.0.0.1:8080", f"http://127.0.0.1:{http_port}")
                        .replace("ws://127.0.0.1:8081", f"ws://127.0.0.1:{ws_port}"))
        done = run_tc("run", "node", "--spec", str(spec), artifacts=root, timeout=120, **CREDS)
    assert done.code == 2 and done.err.startswith(f"error: {spec}: /engine/node/venue_http_url: http://127.0.0.1:{http_port}: "
                                                  "venue unreachable: connection refused"), done.err
    assert not (root / "runs").exists()


def test_check_does_not_connect(tmp_path: Path):
    root = tmp_path / "artifacts"
    with silent_port() as http, silent_port() as ws:
        done, _ = _node(root, http.getsockname()[1], ws.getsockname()[1], "--check")
        for sock in (http, ws):
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):  # no connection is waiting to be accepted: --check made none
                sock.accept()
    assert done.code == 0 and done.out.startswith("changed: would run the live node"), done.out


def test_usd_m_futures_on_an_imported_dataset_of_hourly_bars_is_exit_2_before_the_venue_is_asked(tmp_path: Path):
    """The perpetual follows a replay of one-minute bars: an hourly dataset is refused from the spec and the manifest alone
    (both venue ports closed: the check comes first), one line, nothing of the run written."""
    import yaml

    from conftest import FIXTURES

    root = tmp_path / "artifacts"
    hourly = FIXTURES / "data" / "binance" / "BTCUSDT-1h-2024-03-01.csv"
    assert run_tc("data", "import", "--csv", str(hourly), "--id", "btc-1h", artifacts=root).code == 0
    doc = yaml.safe_load((SPECS / "node-futures.yaml").read_text())
    doc["dataset"] = {"kind": "imported", "id": "btc-1h"}
    spec_file = tmp_path / "futures-1h.yaml"
    spec_file.write_text(yaml.safe_dump(doc))
    with closed_port() as http_port, closed_port() as ws_port:
        done = run_tc("run", "node", "--spec", str(spec_file), "--venue-url", f"http://127.0.0.1:{http_port}",
                      "--venue-ws-url", f"ws://127.0.0.1:{ws_port}", artifacts=root, timeout=120, **CREDS)
    _refused_in_one_line(done, 0.0, root, f"{spec_file}: /engine/node/account_type: usdt_futures follows a replay of 1m bars; "
                                          "dataset btc-1h holds 1h bars")
