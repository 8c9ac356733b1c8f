"""The node's cache database (opslab/cachedb.py) with a real redis-server: start on a free loopback port, PING,
key counts by NautilusTrader's collections, durable writes, stop by PID, nothing left running on any way out."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from opslab import cachedb
from opslab.errors import InputError

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None and not any(os.access(p, os.X_OK) for p in cachedb.SERVER_CANDIDATES),
                                 reason=f"redis-server not installed: {cachedb.INSTALL_HINT}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


@needs_redis
def test_start_ping_count_stop(tmp_path: Path):
    with cachedb.RedisServer(tmp_path / "db") as db:
        pid = db.proc.pid
        assert db.url == f"redis://127.0.0.1:{db.port}"
        assert cachedb.command(db.host, db.port, "PING") == "PONG"
        assert cachedb.command(db.host, db.port, "CONFIG", "GET", "bind") == ["bind", "127.0.0.1"]
        assert cachedb.key_counts(db.host, db.port) == {}
        cachedb.pipeline(db.host, db.port, [("RPUSH", "trader-T-1:orders:O-1", "a"), ("RPUSH", "trader-T-1:orders:O-2", "b"),
                                           ("SADD", "trader-T-1:index:orders_open", "O-2"), ("SET", "trader-T-1:instruments:X", "x")])
        assert cachedb.key_counts(db.host, db.port) == {"index:orders_open": 1, "instruments": 1, "orders": 2}
        held = cachedb.state(db.host, db.port)
        assert (held["orders"], held["orders_open"], held["position_quantity"]) == (["O-1", "O-2"], ["O-2"], "0")
    assert db.proc is None and not _alive(pid)
    assert (tmp_path / "db" / "appendonlydir").is_dir()  # its data stays under the folder it was given


@needs_redis
def test_writes_survive_a_restart_on_the_same_folder(tmp_path: Path):
    with cachedb.RedisServer(tmp_path / "db") as db:
        cachedb.command(db.host, db.port, "SADD", "trader-T-1:index:positions_open", "P-1")
    with cachedb.RedisServer(tmp_path / "db") as db:  # a new server (another port) on the same files
        assert cachedb.key_counts(db.host, db.port) == {"index:positions_open": 1}


@needs_redis
def test_position_quantity_nets_the_fills_nautilus_stores(tmp_path: Path):
    msgspec = pytest.importorskip("msgspec")
    fills = [{"type": "OrderFilled", "order_side": "BUY", "last_qty": "0.020000"}, {"type": "OrderFilled", "order_side": "SELL", "last_qty": "0.005"},
             {"type": "PositionOpened", "order_side": "BUY", "last_qty": "9"}]
    with cachedb.RedisServer(tmp_path / "db") as db:
        cachedb.command(db.host, db.port, "SADD", "trader-T-1:index:positions_open", "P-1")
        for f in fills:  # binary values: through a raw RESP command
            raw = msgspec.msgpack.encode(f)
            with socket.create_connection((db.host, db.port), timeout=2) as s:
                key = b"trader-T-1:positions:P-1"
                s.sendall(b"*3\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(raw), raw))
                assert s.recv(64).startswith(b":")
        assert cachedb.state(db.host, db.port)["position_quantity"] == "0.015"


def test_compare_names_what_disagrees():
    node = {"open_orders": [{"client_order_id": "O-1"}], "positions": [{"quantity": "0.01", "side": "LONG"}]}
    venue = {"open_orders": [{"client_order_id": "O-1"}], "positions": [{"quantity": "0.02", "side": "LONG"}]}
    held = {"orders_open": ["O-1"], "position_quantity": "0.01"}
    out = cachedb.compare(node, held, venue)
    assert out["open_orders"] == {"node": ["O-1"], "cache_db": ["O-1"], "venue": ["O-1"], "agree": True}
    assert out["position_quantity"] == {"node": "0.01", "cache_db": "0.01", "venue": "0.02", "agree": False}


@needs_redis
def test_no_leak_when_it_never_becomes_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    started: list[int] = []
    real = cachedb.RedisServer.wait_ready

    def refuse(self, timeout: float = 0.0):
        started.append(self.proc.pid)
        real(self, timeout=0.0)  # no time to answer: the readiness deadline passes

    monkeypatch.setattr(cachedb.RedisServer, "wait_ready", refuse)
    server = cachedb.RedisServer(tmp_path / "db")
    with pytest.raises(cachedb.RedisError, match="did not answer PING within 0 s"):
        server.start()
    assert server.proc is None and started and not _alive(started[0])


@needs_redis
def test_no_leak_when_the_body_fails(tmp_path: Path):
    with pytest.raises(RuntimeError, match="boom"):
        with cachedb.RedisServer(tmp_path / "db") as db:
            pid = db.proc.pid
            raise RuntimeError("boom")
    assert not _alive(pid)


def test_refuses_a_host_other_than_loopback(tmp_path: Path):
    with pytest.raises(InputError, match="expected 127.0.0.1"):
        cachedb.RedisServer(tmp_path, host="0.0.0.0")
    with pytest.raises(InputError, match="expected 127.0.0.1"):
        cachedb.command("10.0.0.1", 6379, "PING")


@pytest.mark.parametrize("url", ["redis://10.0.0.1:6379", "redis://localhost:6379", "redis://127.0.0.1", "redis://127.0.0.1:0",
                                 "redis://127.0.0.1:99999", "redis://127.0.0.1:6379/0", "http://127.0.0.1:6379"])
def test_parse_url_refuses_anything_but_a_loopback_port(url):
    with pytest.raises(InputError, match=r"--cache-db-url: .*expected redis://127.0.0.1:PORT"):
        cachedb.parse_url(url, "--cache-db-url")
    assert cachedb.parse_url("redis://127.0.0.1:6390", "x") == ("127.0.0.1", 6390)


def test_missing_server_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cachedb.shutil, "which", lambda name: None)
    monkeypatch.setattr(cachedb, "SERVER_CANDIDATES", ())
    with pytest.raises(cachedb.Unavailable, match="apt-get install redis-server"):
        cachedb.find_server()


@needs_redis
def test_a_reply_is_read_with_a_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with cachedb.RedisServer(tmp_path / "db") as db:
        cachedb.command(db.host, db.port, "SET", "big", "x" * 5000)
        monkeypatch.setattr(cachedb, "MAX_REPLY_BYTES", 1000)
        with pytest.raises(cachedb.RedisError, match="larger than 1000 bytes"):
            cachedb.command(db.host, db.port, "GET", "big")


@needs_redis
def test_an_index_member_that_is_no_id_is_named_not_used(tmp_path: Path):
    # what NautilusTrader 1.221.0 left in index:positions_open after a warm restart: a serialized event beside the id
    with cachedb.RedisServer(tmp_path / "db") as db:
        cachedb.command(db.host, db.port, "SADD", "trader-T-1:index:positions_open", "P-1", "\x00\x15\x01type OrderFilled")
        held = cachedb.state(db.host, db.port)
    assert held["positions_open"] == ["<not an id: 19 bytes>", "P-1"] and held["position_quantity"] == "0"
