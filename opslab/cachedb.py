"""The node's cache database: Debian's redis-server started by the lab on a free 127.0.0.1 port with its
data under the run's folder, and a small RESP exchange to read it (PING, SCAN, SMEMBERS), every reply
read with a bound. NautilusTrader itself talks to it (CacheConfig(database=DatabaseConfig(type="redis"))).

Durability: append-only file with `appendfsync always` and no RDB snapshots, so every write the node made
that Redis acknowledged is on disk before the node can die; a restarted node's Redis (same --dir) loads it.
A Redis the lab starts for `tc run node` dies with that process (PR_SET_PDEATHSIG: also when the node is
SIGKILLed, so it never outlives it); a drill keeps one Redis across node restarts and stops it itself.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from opslab.errors import InputError

INSTALL_HINT = "apt-get install redis-server"
SERVER_CANDIDATES = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 5.0
MAX_REPLY_BYTES = 8 << 20  # one reply (a SCAN page, a set's members)
MAX_KEYS = 200_000  # keys counted at most (SCAN pages stop there)
LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1
ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")  # an order or position id as NautilusTrader writes them


class Unavailable(RuntimeError):
    """No redis-server on this machine (the message says how to install it)."""


class RedisError(RuntimeError):
    """Redis answered with an error, or not within its deadline, or too much."""


def find_server() -> str:
    """The redis-server binary (Debian's package), else Unavailable naming the package."""
    for path in (shutil.which("redis-server"), *SERVER_CANDIDATES):
        if path and os.access(path, os.X_OK):
            return path
    raise Unavailable(f"redis-server not found (the node's cache database needs it): {INSTALL_HINT}")


def missing() -> str | None:
    """Why no lab Redis can start on this machine (with how to install it), or None."""
    try:
        find_server()
    except Unavailable as exc:
        return str(exc)
    return None


def parse_url(url: str, where: str) -> tuple[str, int]:
    """(host, port) of redis://127.0.0.1:PORT; InputError naming WHERE for anything else (loopback only)."""
    prefix = f"redis://{LOOPBACK}:"
    port = url[len(prefix):] if url.startswith(prefix) else ""
    if not port.isdigit() or not 1 <= int(port) <= 65535 or port.startswith("0"):
        raise InputError(f"{where}: {url!r}: expected redis://127.0.0.1:PORT (loopback only, no path)")
    return LOOPBACK, int(port)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class RedisServer:
    """`with RedisServer(folder) as db:` a redis-server on 127.0.0.1:db.port with its files in FOLDER.
    TIED: the server gets SIGTERM when the starting process dies (PR_SET_PDEATHSIG)."""

    def __init__(self, folder: Path, host: str = LOOPBACK, tied: bool = False) -> None:
        if host != LOOPBACK:
            raise InputError(f"cache database host {host!r}: expected {LOOPBACK} (the lab's Redis listens on loopback only)")
        self.folder, self.host, self.tied = Path(folder), host, tied
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Start redis-server and wait for PING (READY_TIMEOUT_S); it is stopped again when that fails."""
        binary = find_server()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        args = [binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.folder), "--protected-mode", "yes",
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log"), "--databases", "1", "--maxclients", "64"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent if self.tied else None)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RedisError(f"redis-server exited {self.proc.returncode} at start; see {self.folder / 'redis.log'}")
            try:
                if command(self.host, self.port, "PING", timeout=0.5) == "PONG":
                    return
            except (OSError, RedisError) as exc:
                last = exc
            time.sleep(0.05)
        raise RedisError(f"redis-server on {self.url} did not answer PING within {timeout:g} s ({last})")

    def stop(self) -> int | None:
        """SIGTERM by PID (Redis fsyncs its append-only file and exits), SIGKILL after STOP_TIMEOUT_S; its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


# --- a small RESP exchange -------------------------------------------------------------------------
def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        raw = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf, self.read = sock, b"", 0

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RedisError("connection closed by redis-server mid-reply")
        self.read += len(chunk)
        if self.read > MAX_REPLY_BYTES:
            raise RedisError(f"reply larger than {MAX_REPLY_BYTES} bytes")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n", 1)
        return head

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self, binary: bool = False) -> Any:
        head = self.line()
        kind, rest = head[:1], head[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest[:200])
        if kind == b":":
            return int(rest)
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.exact(int(rest))
            return data if binary else data.decode("utf-8", "replace")
        if kind == b"*":
            return None if int(rest) < 0 else [self.reply(binary) for _ in range(int(rest))]
        raise RedisError(f"unexpected reply {head[:40]!r}")


def command(host: str, port: int, *args: str, timeout: float = IO_TIMEOUT_S) -> Any:
    """One command on a fresh connection to HOST:PORT (loopback only), its decoded reply (bounded)."""
    return pipeline(host, port, [args], timeout)[0]


def pipeline(host: str, port: int, commands: list[tuple[str, ...]], timeout: float = IO_TIMEOUT_S, binary: bool = False) -> list[Any]:
    """COMMANDS on one connection, their replies in order (each reply bounded by MAX_REPLY_BYTES; BINARY: strings as bytes)."""
    if host != LOOPBACK:
        raise InputError(f"cache database host {host!r}: expected {LOOPBACK}")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(_encode(*c) for c in commands))
        reader = _Reader(sock)
        replies = []
        for _ in commands:
            reader.read = 0
            replies.append(reader.reply(binary))
        return replies


def keys(host: str, port: int) -> list[str]:
    """Every key (SCAN, at most MAX_KEYS)."""
    found: list[str] = []
    cursor = "0"
    while True:
        cursor, page = command(host, port, "SCAN", cursor, "COUNT", "1000")
        found.extend(page)
        if cursor == "0" or len(found) >= MAX_KEYS:
            return sorted(set(found[:MAX_KEYS]))


def collection(key: str) -> str:
    """NautilusTrader's collection of KEY: `trader-<id>:orders:O-1` -> orders, `...:index:orders_open` -> index:orders_open."""
    parts = key.split(":")
    if parts[0].startswith("trader-"):
        parts = parts[1:]
    if not parts:
        return "other"
    if parts[0] in ("index", "snapshots", "health") and len(parts) > 1:
        return f"{parts[0]}:{parts[1]}"
    return parts[0]


def key_counts(host: str, port: int) -> dict[str, int]:
    """How many keys per collection (orders, positions, accounts, index:orders_open, ...)."""
    counts: dict[str, int] = {}
    for key in keys(host, port):
        name = collection(key)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def state(host: str, port: int) -> dict[str, Any]:
    """What the cache database holds, decoded from NautilusTrader's indexes: key counts, the open and
    closed orders' client ids, the open and closed positions' ids, the accounts."""
    all_keys = keys(host, port)
    by_name = {collection(k): k for k in all_keys}
    counts: dict[str, int] = {}
    for key in all_keys:
        counts[collection(key)] = counts.get(collection(key), 0) + 1
    wanted = ("index:orders_open", "index:orders_closed", "index:positions_open", "index:positions_closed")
    present = [w for w in wanted if w in by_name]
    members = pipeline(host, port, [("SMEMBERS", by_name[w]) for w in present]) if present else []
    # an index member that is no id (NautilusTrader 1.221.0 puts a serialized OrderFilled into index:positions_open) is named, not used
    sets = {w: sorted(m if ID.match(m) else f"<not an id: {len(m.encode())} bytes>" for m in ms) for w, ms in zip(present, members, strict=True)}
    prefix = all_keys[0].split(":", 1)[0] + ":" if all_keys and all_keys[0].startswith("trader-") else ""
    quantity = position_quantity(host, port, [f"{prefix}positions:{p}" for p in sets.get("index:positions_open", []) if ID.match(p)])
    return {"position_quantity": quantity, "key_counts": dict(sorted(counts.items())), "keys": len(all_keys),
            "orders": sorted(k.split(":", 2)[-1] for k in all_keys if collection(k) == "orders"),
            "orders_open": sets.get("index:orders_open", []), "orders_closed": sets.get("index:orders_closed", []),
            "positions": sorted(k.split(":", 2)[-1] for k in all_keys if collection(k) == "positions"),
            "positions_open": sets.get("index:positions_open", []), "positions_closed": sets.get("index:positions_closed", []),
            "accounts": sorted(k.split(":", 2)[-1] for k in all_keys if collection(k) == "accounts")}



def position_quantity(host: str, port: int, position_keys: list[str]) -> str:
    """The signed net base quantity of the positions at POSITION_KEYS: NautilusTrader keeps each position as the list
    of its OrderFilled events (msgpack, CacheConfig encoding), so BUY fills add last_qty and SELL fills subtract it."""
    import msgspec  # NautilusTrader's own serializer's library (in both engine profiles' locks); only needed here

    if not position_keys:
        return "0"
    net = Decimal(0)
    for events in pipeline(host, port, [("LRANGE", k, "0", "-1") for k in position_keys], binary=True):
        for raw in events or []:
            try:
                event = msgspec.msgpack.decode(raw)
                if event.get("type") == "OrderFilled":
                    net += Decimal(str(event["last_qty"])) * (1 if event["order_side"] == "BUY" else -1)
            except (msgspec.DecodeError, InvalidOperation, KeyError, AttributeError, TypeError) as exc:
                raise RedisError(f"a position event is not NautilusTrader's msgpack OrderFilled: {exc}") from None
    return _signed(net)


def _signed(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value else "0"
    return text


def _net(positions: list[dict[str, Any]]) -> str:
    """The signed net quantity of state_snapshot positions (LONG +, SHORT -)."""
    return _signed(sum((Decimal(p["quantity"]) * (1 if p["side"] == "LONG" else -1) for p in positions), Decimal(0)))


def compare(node: dict[str, Any], held: dict[str, Any], venue: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Node (state_snapshot at its stop), cache database (state() above) and venue (state_snapshot) side by side:
    the open orders' client ids, and the signed net position (the node's positions, the fills of the database's open
    positions, the venue's trades)."""
    items = {"open_orders": (sorted(o["client_order_id"] for o in node["open_orders"]), sorted(held["orders_open"]),
                             sorted(o["client_order_id"] for o in venue["open_orders"])),
             "position_quantity": (_net(node["positions"]), held["position_quantity"], _net(venue["positions"]))}
    return {name: {"node": n, "cache_db": c, "venue": v, "agree": n == c == v} for name, (n, c, v) in items.items()}
